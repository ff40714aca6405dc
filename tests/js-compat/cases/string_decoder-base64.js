const { StringDecoder } = require('string_decoder');
const d = new StringDecoder('base64');
console.log(d.write(Buffer.from('ab')));
console.log(d.write(Buffer.from('c')));
console.log(d.write(Buffer.from('defg')));
console.log(d.end());
const h = new StringDecoder('hex');
console.log(h.write(Buffer.from([1, 255])), h.end(Buffer.from([16])));
