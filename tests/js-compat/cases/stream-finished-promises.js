const { finished } = require('stream/promises');
const { Readable, Writable, PassThrough } = require('stream');
(async () => {
  const r = Readable.from(['a', 'b']);
  r.resume();
  await finished(r);
  console.log('readable finished', r.readableEnded);
  const w = new Writable({ write(c, e, cb) { cb(); } });
  w.end('x');
  await finished(w);
  console.log('writable finished', w.writableFinished);
  const p = new PassThrough();
  setTimeout(() => p.destroy(new Error('broken')), 1);
  await finished(p).catch((e) => console.log('rejected', e.message));
})();
