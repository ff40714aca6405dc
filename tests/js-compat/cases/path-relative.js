const path = require('path');
console.log(path.relative('/data/a/b', '/data/c/d'));
console.log(path.relative('/data/a', '/data/a/b/c'));
console.log(JSON.stringify(path.relative('/same', '/same')));
console.log(path.relative('/a/b/c', '/a'));
console.log(path.relative('/', '/x/y'));
