const path = require('path');
const p = path.parse('/home/user/dir/file.tar.gz');
console.log(p.root, p.dir, p.base, p.ext, p.name);
const q = path.parse('relative.txt');
console.log(JSON.stringify([q.root, q.dir, q.base, q.ext, q.name]));
console.log(path.format({ dir: '/x/y', base: 'z.js' }));
console.log(path.format({ root: '/', name: 'file', ext: '.md' }));
console.log(path.format({ name: 'n', ext: 'txt' }));
console.log(JSON.stringify(path.parse('/')));
