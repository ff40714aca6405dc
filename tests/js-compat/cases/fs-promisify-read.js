const fs = require('fs');
const util = require('util');
const file = '/tmp/jscompat-work/fs-promisify-read.txt';
fs.writeFileSync(file, 'promisified');
(async () => {
  const fd = await util.promisify(fs.open)(file, 'r');
  const result = await util.promisify(fs.read)(fd, Buffer.alloc(5), 0, 5, 0);
  console.log(Object.keys(result).sort(), result.bytesRead, result.buffer.toString());
  console.log(await util.promisify(fs.exists)(file), await util.promisify(fs.exists)(file + '.no'));
  await util.promisify(fs.close)(fd);
  fs.unlinkSync(file);
})();
