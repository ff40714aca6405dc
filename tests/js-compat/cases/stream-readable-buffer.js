const { Readable, Writable } = require('stream');
const chunks = [];
Readable.from(Buffer.from('whole buffer')).on('data', (c) => chunks.push(c)).on('end', () => {
  console.log(chunks.length, Buffer.concat(chunks).toString());
});
Readable.from('a string').on('data', (c) => console.log('string chunk', JSON.stringify(c)));
const batched = [];
const w = new Writable({
  writev(list, cb) { batched.push(list.map((x) => x.chunk.toString()).join('+')); cb(); },
});
w.cork();
w.write('1');
w.write('2');
w.write('3');
process.nextTick(() => w.uncork());
w.on('finish', () => console.log('writev', batched));
setTimeout(() => w.end(), 2);
