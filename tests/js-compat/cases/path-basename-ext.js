const path = require('path');
console.log(path.basename('/a/b/c.txt'));
console.log(path.basename('/a/b/c.txt', '.txt'));
console.log(path.basename('/a/b/'));
console.log(path.extname('index.html'), path.extname('index.'), JSON.stringify(path.extname('.bashrc')));
console.log(path.extname('a.b.c'), JSON.stringify(path.extname('noext')));
console.log(path.dirname('/a/b/c'), path.dirname('a'), path.dirname('/'));
