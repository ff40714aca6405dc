const path = require('path');
console.log(path.toNamespacedPath('/a/b'));
const parts = ['usr', 'local', 'bin'];
console.log(path.join('/', ...parts));
console.log(parts.reduce((acc, p) => path.join(acc, p), ''));
console.log(path.relative(path.join('/', 'usr'), path.join('/', ...parts)));
console.log(path.parse(path.join('/', ...parts, 'node')).dir);
