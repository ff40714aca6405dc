const util = require('util');
console.log(util.inspect(new Uint8Array([1, 2, 3])));
console.log(util.inspect(new Float64Array(2)));
console.log(util.inspect(new ArrayBuffer(4)));
console.log(util.inspect(new DataView(new ArrayBuffer(2))).split('\n')[0]);
console.log(util.inspect([new Int16Array([-1])]));
