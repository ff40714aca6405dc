const crypto = require('crypto');
const big = Buffer.alloc(100000, 'a');
console.log(crypto.createHash('sha256').update(big).digest('hex'));
const h = crypto.createHash('sha1');
for (let i = 0; i < 1000; i++) h.update('chunk' + i);
console.log(h.digest('hex'));
console.log(crypto.createHash('md5').update('é', 'utf8').digest('hex'));
console.log(crypto.createHash('sha256').update('6869', 'hex').digest('hex'));
