const { Readable, Writable } = require('stream');
const chunks = [];
const sink = new Writable({
  write(chunk, enc, cb) {
    chunks.push(chunk.toString());
    cb();
  },
});
const src = new Readable({ read() {} });
src.pipe(sink);
src.push('hello ');
src.push('pipe');
src.push(null);
sink.on('finish', () => console.log('finished:', chunks.join('')));
