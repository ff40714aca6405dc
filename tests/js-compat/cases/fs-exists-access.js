const fs = require('fs');
const file = '/tmp/jscompat-work/fs-exists-access.txt';
fs.writeFileSync(file, 'x');
console.log(fs.existsSync(file), fs.existsSync(file + '.no'));
console.log(fs.accessSync(file), fs.accessSync(file, fs.constants.R_OK));
try { fs.accessSync(file + '.no'); } catch (e) { console.log(e.code, e.syscall); }
fs.access(file, fs.constants.F_OK, (err) => {
  console.log('access', err);
  fs.exists(file, (ok) => {
    console.log('exists', ok);
    fs.unlinkSync(file);
  });
});
