const util = require('util');
console.log(Buffer.from('abc'));
console.log(util.inspect(Buffer.alloc(60)));
console.log({ buf: Buffer.from([255, 0]) });
console.log([Buffer.from('x')]);
console.log(String(Buffer.from('plain')));
