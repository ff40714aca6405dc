const fs = require('fs');
try {
  fs.openSync('/tmp/jscompat-work/nonexistent/file.txt', 'r');
} catch (e) {
  console.log(e instanceof Error, e.code, e.errno, e.syscall, e.path);
  console.log(e.message);
}
try {
  fs.renameSync('/tmp/jscompat-work/nope-a', '/tmp/jscompat-work/nope-b');
} catch (e) {
  console.log(e.code, e.syscall, e.path, e.dest);
  console.log(e.message);
}
