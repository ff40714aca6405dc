const fs = require('fs');
const dir = '/tmp/jscompat-work/fs-rename-copy';
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir);
fs.writeFileSync(dir + '/a', 'data-a');
fs.renameSync(dir + '/a', dir + '/b');
console.log(fs.existsSync(dir + '/a'), fs.readFileSync(dir + '/b', 'utf8'));
fs.copyFileSync(dir + '/b', dir + '/c');
console.log(fs.readFileSync(dir + '/c', 'utf8'));
try {
  fs.copyFileSync(dir + '/b', dir + '/c', fs.constants.COPYFILE_EXCL);
} catch (e) {
  console.log(e.code, e.syscall);
}
fs.copyFile(dir + '/b', dir + '/d', (err) => {
  console.log(err, fs.readdirSync(dir).sort());
  fs.rename(dir + '/d', dir + '/e', (err2) => {
    console.log(err2, fs.readdirSync(dir).sort());
    fs.rmSync(dir, { recursive: true });
  });
});
