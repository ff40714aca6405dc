const fsp = require('fs/promises');
const file = '/tmp/jscompat-work/fs-promises-filehandle.txt';
(async () => {
  const fh = await fsp.open(file, 'w+');
  console.log(typeof fh.fd);
  const { bytesWritten } = await fh.write('0123456789');
  console.log(bytesWritten);
  const buf = Buffer.alloc(4);
  const { bytesRead } = await fh.read(buf, 0, 4, 3);
  console.log(bytesRead, buf.toString());
  console.log((await fh.stat()).size);
  await fh.close();
  const fh2 = await fsp.open(file, 'r');
  console.log(await fh2.readFile('utf8'));
  await fh2.close();
  await fsp.unlink(file);
})();
