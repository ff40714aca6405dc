const util = require('util');
const obj = { a: { b: { c: { d: { e: 1 } } } } };
console.log(util.inspect(obj));
console.log(util.inspect(obj, { depth: 0 }));
console.log(util.inspect(obj, { depth: Infinity }));
console.log(util.inspect(obj, { compact: false, depth: 1 }));
console.log(util.inspect('str'), util.inspect(5), util.inspect(null));
console.log(util.inspect([1, 2, 3], { colors: false }));
console.log(util.inspect({ b: 2, a: 1 }, { sorted: true }));
