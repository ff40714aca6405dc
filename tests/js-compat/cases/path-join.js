const path = require('path');
console.log(path.join('/a', 'b', '../c', './d'));
console.log(path.join('a', '', 'b/'));
console.log(path.join());
console.log(path.join('..', 'x', '..', '..'));
console.log(path.join('/a//b', '/c'));
console.log(path.posix.join('x', 'y') === path.join('x', 'y'));
