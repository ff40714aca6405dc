const fs = require('fs');
const path = require('path');
const dir = '/tmp/jscompat-work/module-require-resolve-paths';
fs.mkdirSync(dir + '/node_modules/local-dep', { recursive: true });
fs.writeFileSync(dir + '/node_modules/local-dep/index.js', 'module.exports = 1;');
console.log(require.resolve('local-dep', { paths: [dir] }).replace(dir, '<dir>'));
try { require.resolve('local-dep'); } catch (e) { console.log(e.code); }
console.log(require.resolve.paths('x')[0], require.resolve.paths('fs'));
console.log(require('node:fs') === require('fs'), require('fs/promises') === require('fs').promises);
fs.rmSync(dir, { recursive: true });
