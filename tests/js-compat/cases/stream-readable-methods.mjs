import { Readable } from 'node:stream';
const doubled = await Readable.from([1, 2, 3, 4]).map((x) => x * 2).toArray();
console.log(doubled);
const evens = await Readable.from([1, 2, 3, 4, 5, 6]).filter((x) => x % 2 === 0).toArray();
console.log(evens);
const total = await Readable.from([1, 2, 3]).reduce((a, b) => a + b, 0);
console.log(total);
const firstTwo = await Readable.from(['a', 'b', 'c']).take(2).toArray();
console.log(firstTwo);
