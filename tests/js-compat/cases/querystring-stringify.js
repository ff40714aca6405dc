const qs = require('querystring');
console.log(qs.stringify({ a: 1, b: ['x', 'y'], c: 'hello world', d: '' }));
console.log(qs.stringify({ k: 'v', k2: 'v2' }, ';', ':'));
console.log(qs.stringify({ n: null, u: undefined, t: true }));
console.log(qs.stringify({ 'ü': 'é&=' }));
