const { Transform } = require('stream');
const upper = new Transform({
  transform(chunk, enc, cb) {
    cb(null, chunk.toString().toUpperCase());
  },
  flush(cb) {
    this.push('!');
    cb();
  },
});
let out = '';
upper.on('data', (d) => (out += d));
upper.on('end', () => console.log(out));
upper.write('abc');
upper.write('def');
upper.end();
