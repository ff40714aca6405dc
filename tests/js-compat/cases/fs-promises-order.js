const fsp = require('fs/promises');
const file = '/tmp/jscompat-work/fs-promises-order.txt';
async function main() {
  const p = fsp.writeFile(file, 'x');
  console.log('pending', p instanceof Promise);
  await p;
  console.log('written');
  const [a, b] = await Promise.all([fsp.readFile(file, 'utf8'), fsp.stat(file)]);
  console.log(a, b.size);
  await fsp.unlink(file);
  return 'end';
}
main().then((v) => console.log(v));
console.log('sync');
