console.log(Array.from({ length: 10 }, (_, i) => i));
console.log(Array.from({ length: 120 }, (_, i) => i % 7));
console.log(['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', 'iota', 'kappa']);
console.log('x'.repeat(100));
console.log({ long: 'y'.repeat(90) });
