const { Writable } = require('stream');
const events = [];
const w = new Writable({
  highWaterMark: 4,
  write(chunk, enc, cb) {
    events.push('write:' + chunk.toString());
    setTimeout(cb, 1);
  },
});
console.log(w.write('ab'));
console.log(w.write('cdef'));
w.on('drain', () => events.push('drain'));
w.on('finish', () => {
  events.push('finish');
  console.log(events.join(' '));
});
w.end('g');
console.log(w.writableEnded, w.writableFinished);
