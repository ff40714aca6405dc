const fsp = require('fs').promises;
(async () => {
  try {
    await fsp.readFile('/tmp/jscompat-work/no-such-file.txt');
  } catch (e) {
    console.log(e.code, e.syscall, e.errno < 0);
  }
  await fsp.access('/tmp/jscompat-work/nothing-here').catch((e) => console.log('access', e.code));
  const result = await fsp.stat('/tmp/jscompat-work/also-nothing').then(() => 'ok', (e) => e.code);
  console.log(result);
})();
