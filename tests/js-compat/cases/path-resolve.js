const path = require('path');
process.chdir('/tmp/jscompat-work');
console.log(path.resolve('a', 'b'));
console.log(path.resolve('/x', 'y', '..', 'z'));
console.log(path.resolve('/x', '/y', 'z'));
console.log(path.resolve());
console.log(path.resolve('.'));
console.log(path.resolve('/a/b/', './c/'));
