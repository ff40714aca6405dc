const a = Buffer.from('abc');
const b = Buffer.from('abd');
console.log(a.equals(Buffer.from('abc')), a.equals(b));
console.log(a.compare(b), b.compare(a), a.compare(a));
console.log(Buffer.compare(a, b));
const list = [Buffer.from('c'), Buffer.from('a'), Buffer.from('b')];
console.log(list.sort(Buffer.compare).map(String).join(''));
console.log(a.compare(b, 0, 2, 0, 2));
