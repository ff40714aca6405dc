console.log('plain string');
console.log(42, -0, 0, 1e21, 1.5);
console.log(123n, Symbol('s'), null, undefined);
console.log(true, false, NaN, Infinity, -Infinity);
console.log(['str in array'], { s: 'it\'s' });
console.log([-0]);
