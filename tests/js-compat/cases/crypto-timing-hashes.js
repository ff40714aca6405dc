const crypto = require('crypto');
console.log(crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abc')));
console.log(crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abd')));
try {
  crypto.timingSafeEqual(Buffer.from('a'), Buffer.from('ab'));
} catch (e) {
  console.log(e.code);
}
const hashes = crypto.getHashes();
console.log(hashes.includes('sha256'), hashes.includes('md5'));
const h = crypto.createHash('sha256');
h.update('x');
h.digest();
try { h.digest(); } catch (e) { console.log(e.code); }
