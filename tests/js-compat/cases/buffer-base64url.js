const data = Buffer.from([0xfb, 0xff, 0xbf, 0x00, 0x01]);
console.log(data.toString('base64'));
console.log(data.toString('base64url'));
console.log(Buffer.from('-_-_', 'base64url'));
console.log(Buffer.from('+/+/', 'base64'));
console.log(Buffer.from('aGk', 'base64').toString());
console.log(Buffer.from('  aG k= ', 'base64').toString());
