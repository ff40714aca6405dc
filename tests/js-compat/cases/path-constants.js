const path = require('path');
console.log(path.sep, path.delimiter);
console.log(typeof path.posix, typeof path.win32);
console.log(path.posix.sep, path.posix === path.posix.posix);
console.log(typeof path.posix.join, path.posix.delimiter);
