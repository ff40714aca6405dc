const fsp = require('node:fs/promises');
const dir = '/tmp/jscompat-work/fs-promises-truncate-rm';
(async () => {
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(dir + '/t', 'abcdef');
  await fsp.truncate(dir + '/t', 2);
  console.log(await fsp.readFile(dir + '/t', 'utf8'));
  const e = await fsp.rmdir(dir).catch((err) => err.code);
  console.log(e);
  await fsp.rm(dir + '/missing', { force: true });
  await fsp.rm(dir, { recursive: true, force: true });
  console.log(await fsp.access(dir).then(() => 'exists', () => 'gone'));
})();
