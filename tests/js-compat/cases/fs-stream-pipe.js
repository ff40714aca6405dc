const fs = require('fs');
const dir = '/tmp/jscompat-work/fs-stream-pipe';
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir);
fs.writeFileSync(dir + '/in', 'line\n'.repeat(5000));
const src = fs.createReadStream(dir + '/in');
const dst = fs.createWriteStream(dir + '/out');
src.pipe(dst);
dst.on('finish', () => {
  const out = fs.readFileSync(dir + '/out', 'utf8');
  console.log(out.length, out.split('\n').length);
  fs.rmSync(dir, { recursive: true });
});
