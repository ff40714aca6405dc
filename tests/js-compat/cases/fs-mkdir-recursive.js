const fs = require('fs');
const base = '/tmp/jscompat-work/fs-mkdir-recursive';
fs.rmSync(base, { recursive: true, force: true });
fs.mkdirSync(base);
const first = fs.mkdirSync(base + '/a/b/c', { recursive: true });
console.log(first === base + '/a');
console.log(fs.mkdirSync(base + '/a/b', { recursive: true }));
console.log(fs.statSync(base + '/a/b/c').isDirectory());
try {
  fs.mkdirSync(base + '/a');
} catch (e) {
  console.log(e.code);
}
fs.mkdir(base + '/x/y', { recursive: true }, (err, p) => {
  console.log(err, p === base + '/x');
  fs.rmSync(base, { recursive: true });
  console.log(fs.existsSync(base));
});
