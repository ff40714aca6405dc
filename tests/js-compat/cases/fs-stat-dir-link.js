const fs = require('fs');
const dir = '/tmp/jscompat-work/fs-stat-dir-link';
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir);
fs.writeFileSync(dir + '/file', 'abc');
fs.symlinkSync('file', dir + '/abs-link');
fs.symlinkSync('missing-target', dir + '/dangling');
console.log(fs.lstatSync(dir + '/abs-link').isSymbolicLink(), fs.statSync(dir + '/abs-link').size);
console.log(fs.existsSync(dir + '/dangling'), fs.lstatSync(dir + '/dangling').isSymbolicLink());
try { fs.statSync(dir + '/dangling'); } catch (e) { console.log(e.code, e.syscall); }
process.chdir(dir);
console.log(fs.realpathSync('abs-link').endsWith('/file'), fs.realpathSync('.') === dir);
process.chdir('/tmp/jscompat-work');
fs.rmSync(dir, { recursive: true });
