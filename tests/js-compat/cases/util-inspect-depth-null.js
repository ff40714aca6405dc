const util = require('util');
let deep = { v: 0 };
for (let i = 1; i < 6; i++) deep = { v: i, child: deep };
console.log(util.inspect(deep, { depth: null, breakLength: Infinity }));
console.log(util.inspect(deep, { depth: 1 }));
console.log(util.inspect(new Map([['k', { a: { b: { c: {} } } }]]), { depth: 1 }));
console.log(util.inspect([[[[1]]]], { depth: 0 }));
