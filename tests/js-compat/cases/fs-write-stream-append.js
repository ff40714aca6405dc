const fs = require('fs');
const file = '/tmp/jscompat-work/fs-write-stream-append.log';
fs.writeFileSync(file, 'first\n');
const ws = fs.createWriteStream(file, { flags: 'a' });
ws.write('second\n');
ws.end('third\n');
ws.on('close', () => {
  console.log(fs.readFileSync(file, 'utf8').split('\n'));
  const rs = fs.createReadStream(file, { encoding: 'utf8', start: 6 });
  let text = '';
  rs.on('data', (d) => (text += d));
  rs.on('close', () => {
    console.log(JSON.stringify(text));
    fs.unlinkSync(file);
  });
});
