const b = Buffer.from('abcdefghij');
console.log(b.toString('utf8', 2, 5));
console.log(b.toString(undefined, 7));
console.log(b.toString('hex', 0, 2));
console.log(JSON.stringify(b.toString('utf8', 5, 2)));
const multi = Buffer.from('€€');
console.log(JSON.stringify(multi.toString('utf8', 0, 4)));
console.log(Buffer.from([0xff, 0xfe, 0x41]).toString());
