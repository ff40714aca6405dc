const { Readable } = require('stream');
const r = Readable.from(['a', 'b', 'c']);
const got = [];
r.on('data', (c) => got.push(c));
r.on('end', () => console.log('end', got));
const r2 = Readable.from([1, 2, 3]);
console.log(r2.readableObjectMode);
(async () => {
  let sum = 0;
  for await (const n of r2) sum += n;
  console.log('sum', sum);
})();
