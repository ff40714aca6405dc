const a = Buffer.alloc(5);
console.log(a);
console.log(Buffer.alloc(4, 'ab'));
console.log(Buffer.alloc(3, 0xff));
const u = Buffer.allocUnsafe(8);
console.log(u.length, Buffer.isBuffer(u));
console.log(Buffer.byteLength('€uro'), Buffer.byteLength('abc', 'hex'), Buffer.byteLength('aGk=', 'base64'));
console.log(Buffer.isEncoding('utf8'), Buffer.isEncoding('UTF-8'), Buffer.isEncoding('nope'));
