const { isDeepStrictEqual } = require('util');
console.log(isDeepStrictEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }));
console.log(isDeepStrictEqual({ a: 1 }, { a: '1' }));
console.log(isDeepStrictEqual(new Map([[1, 2]]), new Map([[1, 2]])));
console.log(isDeepStrictEqual(new Set([1, 2]), new Set([2, 1])));
console.log(isDeepStrictEqual([1, 2], [1, 2, 3]));
console.log(isDeepStrictEqual(NaN, NaN), isDeepStrictEqual(0, -0));
console.log(isDeepStrictEqual(new Date(5), new Date(5)));
