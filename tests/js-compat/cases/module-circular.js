const fs = require('fs');
const dir = '/tmp/jscompat-work/module-circular';
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(dir + '/a.js', 'exports.loaded = false; const b = require("./b"); exports.fromB = b.partialA; exports.loaded = true;');
fs.writeFileSync(dir + '/b.js', 'const a = require("./a"); exports.partialA = a.loaded;');
const a = require(dir + '/a');
console.log(a.loaded, a.fromB);
fs.rmSync(dir, { recursive: true });
