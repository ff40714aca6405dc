const { pipeline } = require('stream/promises');
const { Readable, Writable } = require('stream');
(async () => {
  let total = '';
  await pipeline(
    Readable.from(['x', 'y', 'z']),
    async function* (source) {
      for await (const chunk of source) yield chunk.repeat(2);
    },
    new Writable({ write(c, e, cb) { total += c; cb(); } }),
  );
  console.log('total', total);
  try {
    await pipeline(Readable.from(['a']), new Writable({ write(c, e, cb) { cb(new Error('sink failed')); } }));
  } catch (e) {
    console.log('caught', e.message);
  }
})();
