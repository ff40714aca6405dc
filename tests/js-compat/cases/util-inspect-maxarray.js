const util = require('util');
console.log(util.inspect(Array.from({ length: 200 }, (_, i) => i)).split('\n').length);
console.log(util.inspect([1, 2, 3, 4, 5], { maxArrayLength: 2 }));
console.log(util.inspect('a'.repeat(20), { maxStringLength: 5 }));
console.log(util.inspect(new Set([1, 2, 3]), { maxArrayLength: 1 }));
console.log(util.inspect(Array(150).fill('ab')).split('\n').slice(-2).join('|'));
