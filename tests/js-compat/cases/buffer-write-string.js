const b = Buffer.alloc(10);
console.log(b.write('hello'));
console.log(b.write('XY', 3));
console.log(b.write('abcdef', 8));
console.log(b.toString('utf8', 0, 10));
console.log(b.write('ff00', 0, 'hex'), b.subarray(0, 3));
console.log(Buffer.alloc(2).write('€'));
