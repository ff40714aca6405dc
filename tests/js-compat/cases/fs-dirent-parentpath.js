const fs = require('fs');
const dir = '/tmp/jscompat-work/fs-dirent-parentpath';
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir + '/x', { recursive: true });
fs.writeFileSync(dir + '/x/f.txt', '');
fs.writeFileSync(dir + '/top.txt', '');
const entries = fs.readdirSync(dir, { withFileTypes: true, recursive: true });
for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
  console.log(e.name, e.parentPath === e.path, e.parentPath.replace(dir, '<dir>'), e.isDirectory());
}
fs.rmSync(dir, { recursive: true });
