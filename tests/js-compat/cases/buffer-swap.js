const b = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
console.log(Buffer.from(b).swap16());
console.log(Buffer.from(b).swap32());
console.log(Buffer.from(b).swap64());
try { Buffer.from([1, 2, 3]).swap16(); } catch (e) { console.log(e.name, e.code); }
console.log(b.readUInt16BE(0) === Buffer.from(b).swap16().readUInt16LE(0));
