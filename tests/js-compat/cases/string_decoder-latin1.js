const { StringDecoder } = require('string_decoder');
const d = new StringDecoder('latin1');
console.log(d.write(Buffer.from([0x63, 0x61, 0x66, 0xe9])));
const a = new StringDecoder('ascii');
console.log(a.write(Buffer.from('ascii text')));
console.log(d.encoding, a.encoding);
try { new StringDecoder('bogus'); } catch (e) { console.log(e.name, e.code); }
