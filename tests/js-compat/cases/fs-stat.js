const fs = require('fs');
const dir = '/tmp/jscompat-work/fs-stat';
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir);
fs.writeFileSync(dir + '/f', '12345');
const s = fs.statSync(dir + '/f');
console.log(s.isFile(), s.isDirectory(), s.isSymbolicLink(), s.size);
console.log(s instanceof fs.Stats, typeof s.mtimeMs, s.mtime instanceof Date);
const d = fs.statSync(dir);
console.log(d.isFile(), d.isDirectory());
console.log(fs.statSync(dir + '/nope', { throwIfNoEntry: false }));
const b = fs.statSync(dir + '/f', { bigint: true });
console.log(typeof b.size, b.size);
fs.stat(dir + '/f', (err, st) => {
  console.log(err, st.size, st.isFile());
  fs.rmSync(dir, { recursive: true });
});
