import { pipeline } from 'node:stream/promises';
import { Readable, Transform, Writable } from 'node:stream';
const seen = [];
await pipeline(
  Readable.from(['a', 'b', 'c']),
  new Transform({
    transform(chunk, enc, cb) { cb(null, chunk.toString().toUpperCase()); },
  }),
  new Writable({ write(chunk, enc, cb) { seen.push(chunk.toString()); cb(); } }),
);
console.log(seen.join(''));
const ac = new AbortController();
const slow = new Readable({ read() {} });
setTimeout(() => ac.abort(), 1);
try {
  await pipeline(slow, new Writable({ write(c, e, cb) { cb(); } }), { signal: ac.signal });
} catch (e) {
  console.log(e.name);
}
