const fs = require('fs');
fs.readFile('/tmp/jscompat-work/definitely-missing-file', (err, data) => {
  console.log(err instanceof Error, err.code, err.syscall, data);
  console.log(err.path);
});
fs.readdir('/tmp/jscompat-work/definitely-missing-dir', (err) => {
  console.log(err.code, err.syscall);
});
