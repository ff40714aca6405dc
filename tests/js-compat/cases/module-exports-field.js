const fs = require('fs');
const base = '/tmp/jscompat-work/node_modules/jscompat-exports-pkg';
fs.mkdirSync(base + '/dist', { recursive: true });
fs.writeFileSync(base + '/package.json', JSON.stringify({
  name: 'jscompat-exports-pkg',
  exports: {
    '.': { require: './dist/main.cjs', import: './dist/main.mjs' },
    './feature': './dist/feature.js',
    './utils/*': './dist/utils/*.js',
  },
}));
fs.mkdirSync(base + '/dist/utils', { recursive: true });
fs.writeFileSync(base + '/dist/main.cjs', 'module.exports = "cjs entry";');
fs.writeFileSync(base + '/dist/main.mjs', 'export default "esm entry";');
fs.writeFileSync(base + '/dist/feature.js', 'module.exports = "feature";');
fs.writeFileSync(base + '/dist/utils/strings.js', 'module.exports = "utils/strings";');
console.log(require('jscompat-exports-pkg'), require('jscompat-exports-pkg/feature'), require('jscompat-exports-pkg/utils/strings'));
try { require('jscompat-exports-pkg/dist/feature.js'); } catch (e) { console.log(e.code); }
import('jscompat-exports-pkg').then((m) => {
  console.log(m.default);
  fs.rmSync(base, { recursive: true });
});
