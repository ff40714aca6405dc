const tryIt = (label, fn) => {
  try { fn(); console.log(label, 'ok'); } catch (e) { console.log(label, e.name, e.code); }
};
tryIt('alloc-neg', () => Buffer.alloc(-5));
tryIt('alloc-str', () => Buffer.alloc('10'));
tryIt('from-num', () => Buffer.from(5));
tryIt('read-oob', () => Buffer.alloc(2).readInt32BE(0));
tryIt('write-oob', () => Buffer.alloc(2).writeUInt16LE(1, 1));
tryIt('write-val', () => Buffer.alloc(2).writeUInt8(300, 0));
tryIt('encoding', () => Buffer.from('x', 'klingon'));
tryIt('tostring-enc', () => Buffer.from('x').toString('klingon'));
tryIt('concat-bad', () => Buffer.concat([1, 2]));
