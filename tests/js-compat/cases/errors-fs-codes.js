const fs = require('fs');
const dir = '/tmp/jscompat-work/errors-fs-codes';
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir);
fs.writeFileSync(dir + '/file', 'x');
const tryIt = (label, fn) => {
  try { fn(); console.log(label, 'ok'); } catch (e) { console.log(label, e.code, e.syscall, typeof e.errno, e.errno < 0); }
};
tryIt('enoent', () => fs.readFileSync(dir + '/missing'));
tryIt('eexist', () => fs.mkdirSync(dir));
tryIt('enotdir', () => fs.readdirSync(dir + '/file'));
tryIt('eisdir', () => fs.readFileSync(dir));
tryIt('enotempty', () => fs.rmdirSync(dir));
tryIt('wx', () => fs.writeFileSync(dir + '/file', 'y', { flag: 'wx' }));
fs.rmSync(dir, { recursive: true });
