const crypto = require('crypto');
console.log(crypto.createHash('sha512').update('abc').digest('hex'));
console.log(crypto.createHash('sha384').update('abc').digest('hex'));
console.log(crypto.createHmac('sha512', 'key').update('msg').digest('hex').length);
