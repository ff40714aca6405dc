console.table([{ a: 1, b: 'x' }, { a: 2, c: true }]);
console.table({ r1: { v: 1 }, r2: { v: 2 } });
console.table([1, 2]);
