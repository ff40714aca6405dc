const fs = require('fs');
const file = '/tmp/jscompat-work/fs-append.txt';
fs.rmSync(file, { force: true });
fs.appendFileSync(file, 'one');
fs.appendFileSync(file, '\ntwo');
fs.appendFileSync(file, Buffer.from('\nthree'));
console.log(fs.readFileSync(file, 'utf8').split('\n'));
fs.writeFileSync(file, 'x', { flag: 'a' });
console.log(fs.readFileSync(file, 'utf8').length);
fs.appendFile(file, '!', (err) => {
  console.log('err', err);
  console.log(fs.readFileSync(file, 'utf8').slice(-2));
  fs.unlinkSync(file);
});
