const { Readable } = require('stream');
async function* gen() {
  yield 'first';
  yield 'second';
}
(async () => {
  const r = Readable.from(gen());
  for await (const chunk of r) console.log('chunk', chunk);
  const r2 = new Readable({ read() {} });
  r2.push(Buffer.from('buf'));
  r2.push(null);
  for await (const c of r2) console.log(Buffer.isBuffer(c), c.toString());
})();
