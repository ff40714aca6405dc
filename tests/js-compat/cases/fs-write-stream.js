const fs = require('fs');
const file = '/tmp/jscompat-work/fs-write-stream.txt';
const ws = fs.createWriteStream(file);
ws.write('hello ');
ws.write(Buffer.from('stream '));
console.log(ws.write('world'));
ws.end('!\n', () => {
  console.log('finished', ws.bytesWritten);
});
ws.on('finish', () => console.log('finish event'));
ws.on('close', () => {
  console.log(JSON.stringify(fs.readFileSync(file, 'utf8')));
  fs.unlinkSync(file);
});
