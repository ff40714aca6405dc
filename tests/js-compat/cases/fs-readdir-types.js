const fs = require('fs');
const dir = '/tmp/jscompat-work/fs-readdir-types';
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir + '/sub', { recursive: true });
fs.writeFileSync(dir + '/b.txt', 'b');
fs.writeFileSync(dir + '/a.txt', 'a');
fs.writeFileSync(dir + '/sub/c.txt', 'c');
console.log(fs.readdirSync(dir).sort());
const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((x, y) => x.name.localeCompare(y.name));
for (const e of entries) console.log(e.name, e.isFile(), e.isDirectory(), e instanceof fs.Dirent);
console.log(fs.readdirSync(dir, { recursive: true }).sort());
fs.readdir(dir, (err, names) => {
  console.log(err, names.length);
  fs.rmSync(dir, { recursive: true });
});
