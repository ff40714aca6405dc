const fs = require('fs');
const file = '/tmp/jscompat-work/fs-read-stream.txt';
fs.writeFileSync(file, 'abcdefghijklmnopqrstuvwxyz');
const chunks = [];
const rs = fs.createReadStream(file, { highWaterMark: 10, encoding: 'utf8' });
rs.on('open', (fd) => console.log('open', typeof fd));
rs.on('data', (c) => chunks.push(c));
rs.on('end', () => console.log('end', chunks));
rs.on('close', () => {
  console.log('close', rs.bytesRead);
  const part = fs.createReadStream(file, { start: 2, end: 5 });
  part.on('data', (c) => console.log('part', c.toString()));
  part.on('end', () => fs.unlinkSync(file));
});
