const fs = require('fs');
const file = '/tmp/jscompat-work/fs-callback-order.txt';
fs.writeFile(file, 'abc', (err) => {
  console.log('written', err);
  fs.readFile(file, 'utf8', (err2, data) => {
    console.log('read', err2, data);
    fs.unlink(file, (err3) => {
      console.log('unlinked', err3, fs.existsSync(file));
    });
  });
});
console.log('sync first');
