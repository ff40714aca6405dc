const fsp = require('fs/promises');
const dir = '/tmp/jscompat-work/fs-promises-basic';
(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir + '/n', { recursive: true });
  await fsp.writeFile(dir + '/a.txt', 'alpha');
  await fsp.appendFile(dir + '/a.txt', '-beta');
  console.log(await fsp.readFile(dir + '/a.txt', 'utf8'));
  const st = await fsp.stat(dir + '/a.txt');
  console.log(st.size, st.isFile());
  console.log((await fsp.readdir(dir)).sort());
  await fsp.rename(dir + '/a.txt', dir + '/n/b.txt');
  console.log(await fsp.readdir(dir + '/n'));
  await fsp.rm(dir, { recursive: true });
  console.log('done');
})();
