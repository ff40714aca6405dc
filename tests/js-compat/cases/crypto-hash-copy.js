const crypto = require('crypto');
const h = crypto.createHash('sha256');
h.update('part1');
const copy = h.copy();
h.update('part2');
console.log(h.digest('hex'));
console.log(copy.digest('hex'));
console.log(crypto.createHash('SHA1').update('x').digest('base64url'));
console.log(crypto.createHash('md5').update('abc').digest('latin1').length);
console.log(crypto.createHash('sha256').update(new Uint8Array([1, 2])).digest('hex').slice(0, 16));
try { crypto.createHash('nope-hash'); } catch (e) { console.log(e.message.split(' ')[0]); }
