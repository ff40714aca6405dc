const fsp = require('fs/promises');
const { constants } = require('fs');
(async () => {
  const dir = await fsp.mkdtemp('/tmp/jscompat-work/fspm-');
  await fsp.writeFile(dir + '/src', 'copy me');
  await fsp.copyFile(dir + '/src', dir + '/dst');
  console.log(await fsp.readFile(dir + '/dst', 'utf8'));
  const err = await fsp.copyFile(dir + '/src', dir + '/dst', constants.COPYFILE_EXCL).catch((e) => e);
  console.log(err.code);
  await fsp.rm(dir, { recursive: true });
  console.log('cleaned');
})();
