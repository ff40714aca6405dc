const crypto = require('crypto');
console.log(crypto.createHash('sha256').update('hello').digest('hex'));
console.log(crypto.createHash('sha1').update('hello').digest('hex'));
console.log(crypto.createHash('md5').update('hello').digest('hex'));
console.log(crypto.createHash('sha256').update('hel').update('lo').digest('base64'));
console.log(crypto.createHash('sha256').update('').digest('hex'));
console.log(crypto.createHash('md5').update(Buffer.from([1, 2, 3])).digest().length);
