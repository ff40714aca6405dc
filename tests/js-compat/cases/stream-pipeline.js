const { pipeline, Readable, Transform, Writable } = require('stream');
const result = [];
pipeline(
  Readable.from(['1', '2', '3']),
  new Transform({ transform(c, e, cb) { cb(null, String(Number(c) * 10)); } }),
  new Writable({ write(c, e, cb) { result.push(c.toString()); cb(); } }),
  (err) => {
    console.log('pipeline done', err, result);
  },
);
