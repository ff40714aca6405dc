const fs = require('fs');
const dir = '/tmp/jscompat-work/module-require-json';
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(dir + '/data.json', JSON.stringify({ name: 'pkg', values: [1, 2] }));
const data = require('./module-require-json/data.json');
console.log(data.name, data.values);
console.log(require('./module-require-json/data') === data);
fs.rmSync(dir, { recursive: true });
