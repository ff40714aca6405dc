const b = Buffer.alloc(16);
b.writeUInt32LE(0xdeadbeef, 0);
b.writeUInt16BE(0x1234, 4);
b.writeInt8(-5, 6);
b.writeInt32BE(-2, 7);
b.writeUInt8(255, 11);
console.log(b.toString('hex'));
console.log(b.readUInt32LE(0).toString(16), b.readUInt32BE(0).toString(16));
console.log(b.readUInt16BE(4), b.readInt8(6), b.readInt32BE(7), b.readUInt8(11));
console.log(b.readUInt16LE(4), b.readInt16LE(0));
try { b.readUInt32LE(14); } catch (e) { console.log(e.name, e.code); }
