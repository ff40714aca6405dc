const { Readable, Writable } = require('stream');
const objs = [{ id: 1 }, { id: 2 }, null];
const r = new Readable({
  objectMode: true,
  read() {
    this.push(objs.shift());
  },
});
const w = new Writable({
  objectMode: true,
  write(obj, enc, cb) {
    console.log('obj', obj.id, typeof obj);
    cb();
  },
});
r.pipe(w).on('finish', () => console.log('done objects'));
