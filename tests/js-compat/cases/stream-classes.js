const stream = require('stream');
console.log(typeof stream, typeof stream.Readable, typeof stream.Writable);
console.log(typeof stream.Transform, typeof stream.PassThrough, typeof stream.Duplex);
console.log(typeof stream.pipeline, typeof stream.finished, typeof stream.promises);
const r = new stream.Readable();
console.log(r instanceof stream.Stream, r instanceof require('events'));
console.log(stream.Stream === stream || typeof stream.Stream === 'function');
