const util = require('util');
console.log(util.inspect({ matrix: [[1, 2, 3], [4, 5, 6], [7, 8, 9]] }));
console.log(util.inspect([{ a: 1, b: 2 }, { a: 3, b: 4 }]));
console.log(util.inspect(Array.from({ length: 30 }, (_, i) => 'item' + i)));
console.log(util.inspect({ data: Array.from({ length: 8 }, (_, i) => i * 1000) }));
console.log(util.inspect([1.5, -2, 300000, 4, 5, 6, 7]));
console.log(util.inspect(new Set(Array.from({ length: 10 }, (_, i) => i))));
