const { StringDecoder } = require('string_decoder');
const d = new StringDecoder('utf8');
const euro = Buffer.from('€');
console.log(JSON.stringify(d.write(euro.subarray(0, 1))));
console.log(JSON.stringify(d.write(euro.subarray(1, 2))));
console.log(d.write(euro.subarray(2)));
console.log(d.write(Buffer.from('plain')));
console.log(JSON.stringify(d.end(Buffer.from([0xe2, 0x82]))));
