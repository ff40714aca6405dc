console.dir({ a: { b: { c: { d: 1 } } } });
console.dir([1, 2], { colors: false });
console.log('%s|%s', 'a', 'b', 'extra', 5);
console.log(new Error('shown').message);
console.log([undefined, null, NaN, -0, 0n]);
console.log({ date: new Date(86400000), re: /x\/y/m });
console.assert(true, 'not printed');
console.log(typeof console.time, typeof console.timeEnd, typeof console.trace);
