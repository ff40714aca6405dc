const { StringDecoder } = require('string_decoder');
const d = new StringDecoder('utf16le');
const b = Buffer.from('hi😀', 'utf16le');
let out = '';
for (let i = 0; i < b.length; i++) out += d.write(b.subarray(i, i + 1));
out += d.end();
console.log(out, out.length);
console.log(new StringDecoder('ucs2').encoding, new StringDecoder().encoding);
