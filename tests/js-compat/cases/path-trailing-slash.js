const path = require('path');
console.log(path.join('a/', '/b/'));
console.log(path.resolve('/a/b/'));
console.log(path.basename('a/b/'), path.dirname('a/b/'));
console.log(path.normalize('a/b/../'));
console.log(path.relative('/a/b/', '/a/b/c/'));
