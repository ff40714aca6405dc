const { Readable, Writable } = require('stream');
let produced = 0;
const r = new Readable({
  highWaterMark: 8,
  read() {
    produced++;
    this.push(produced <= 20 ? 'xxxx' : null);
  },
});
let consumed = 0;
const w = new Writable({
  highWaterMark: 8,
  write(c, e, cb) {
    consumed += c.length;
    setImmediate(cb);
  },
});
r.pipe(w);
w.on('finish', () => console.log('consumed', consumed, 'produced', produced));
