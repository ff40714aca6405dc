const util = require('util');
console.log(util.inspect([1, 2], { showHidden: true }));
const o = {};
Object.defineProperty(o, 'secret', { value: 's', enumerable: false });
o.visible = true;
console.log(util.inspect(o, { showHidden: true }));
console.log(util.inspect(new Error('e'), { showHidden: true }).includes('[stack]'));
console.log(util.format('%o', { f: 1 }));
