import path, { join, basename } from 'node:path';
import { posix } from 'path';
console.log(join('a', 'b'), basename('/x/y.z', '.z'));
console.log(path.extname('f.js'), posix.normalize('a//b'));
console.log(typeof path.resolve);
