const crypto = require('crypto');
console.log(crypto.createHmac('sha256', 'secret').update('message').digest('hex'));
console.log(crypto.createHmac('sha1', 'key').update('The quick brown fox').digest('base64'));
console.log(crypto.createHmac('md5', Buffer.from('k')).update('x').digest('hex'));
const longKey = 'k'.repeat(100);
console.log(crypto.createHmac('sha256', longKey).update('data').digest('hex'));
