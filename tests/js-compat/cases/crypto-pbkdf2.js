const crypto = require('crypto');
console.log(crypto.pbkdf2Sync('password', 'salt', 1, 20, 'sha1').toString('hex'));
console.log(crypto.pbkdf2Sync('password', 'salt', 2, 32, 'sha256').toString('hex'));
crypto.pbkdf2('pw', 'NaCl', 10, 16, 'sha512', (err, key) => console.log(err, key.toString('hex')));
