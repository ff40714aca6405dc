const util = require('util');
const fs = require('fs');
function legacy(a, b, cb) {
  setTimeout(() => (a < 0 ? cb(new Error('negative')) : cb(null, a + b)), 1);
}
const p = util.promisify(legacy);
const stat = util.promisify(fs.stat);
(async () => {
  console.log('resolved', await p(1, 2));
  await p(-1, 2).catch((e) => console.log('rejected', e.message));
  console.log('dir?', (await stat('/tmp/jscompat-work')).isDirectory());
  const cbified = util.callbackify(async (x) => x * 2);
  cbified(21, (err, v) => console.log('callbackify', err, v));
  console.log(typeof util.promisify.custom, typeof fs.exists[util.promisify.custom]);
})();
