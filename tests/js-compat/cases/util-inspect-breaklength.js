const util = require('util');
const o = { alpha: 'aaaaaaaaaa', beta: 'bbbbbbbbbb', gamma: 'cccccccccc', delta: 'dddddddddd', eps: 1 };
console.log(util.inspect(o));
console.log(util.inspect(o, { breakLength: Infinity }));
console.log(util.inspect({ a: 1, b: 2 }, { breakLength: 3 }));
console.log(util.inspect({ list: ['one', 'two', 'three'], obj: { x: 1, y: 2 } }));
