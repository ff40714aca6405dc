const fs = require('fs');
const base = '/tmp/jscompat-work/fs-cp-recursive';
fs.rmSync(base, { recursive: true, force: true });
fs.mkdirSync(base + '/src/inner', { recursive: true });
fs.writeFileSync(base + '/src/a.txt', 'A');
fs.writeFileSync(base + '/src/inner/b.txt', 'B');
fs.cpSync(base + '/src', base + '/dst', { recursive: true });
console.log(fs.readdirSync(base + '/dst', { recursive: true }).sort());
console.log(fs.readFileSync(base + '/dst/inner/b.txt', 'utf8'));
try { fs.cpSync(base + '/src', base + '/dst2'); } catch (e) { console.log(e.code); }
fs.rmSync(base, { recursive: true });
