const fs = require('fs');
const file = '/tmp/jscompat-work/fs-writev-readv-like.bin';
const fd = fs.openSync(file, 'w+');
fs.writeSync(fd, Buffer.from('0123456789'));
fs.writeSync(fd, 'AB', 2);
const out = Buffer.alloc(4);
const n = fs.readSync(fd, out, { position: 1, length: 4 });
console.log(n, out.toString());
fs.read(fd, Buffer.alloc(3), 0, 3, 5, (err, bytesRead, buffer) => {
  console.log(err, bytesRead, buffer.toString());
  fs.closeSync(fd);
  fs.unlinkSync(file);
});
