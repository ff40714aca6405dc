const { Transform, Readable } = require('stream');
const lines = new Transform({
  readableObjectMode: true,
  transform(chunk, enc, cb) {
    this.buf = (this.buf || '') + chunk;
    const parts = this.buf.split('\n');
    this.buf = parts.pop();
    for (const p of parts) this.push({ line: p });
    cb();
  },
  flush(cb) {
    if (this.buf) this.push({ line: this.buf });
    cb();
  },
});
Readable.from(['a\nb', 'c\nd\n', 'e']).pipe(lines);
lines.on('data', (o) => console.log(JSON.stringify(o)));
lines.on('end', () => console.log('end'));
