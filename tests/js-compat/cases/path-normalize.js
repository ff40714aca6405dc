const path = require('path');
console.log(path.normalize('/foo/bar//baz/asdf/quux/..'));
console.log(path.normalize('./a/./b/'));
console.log(path.normalize(''));
console.log(path.normalize('../../x'));
console.log(path.normalize('/../x'));
console.log(path.isAbsolute('/x'), path.isAbsolute('x'), path.isAbsolute(''));
