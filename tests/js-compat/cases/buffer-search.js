const b = Buffer.from('the quick brown fox jumps over the lazy dog');
console.log(b.indexOf('the'), b.lastIndexOf('the'), b.indexOf('cat'));
console.log(b.indexOf(Buffer.from('fox')), b.indexOf(0x71));
console.log(b.includes('lazy'), b.includes('LAZY'));
console.log(b.indexOf('o', 15));
console.log(Buffer.from([1, 2, 3, 2]).lastIndexOf(2));
