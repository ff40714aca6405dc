const qs = require('querystring');
const r = qs.parse('a=1&b=two&a=3&c=&d');
console.log(r.a, r.b, JSON.stringify(r.c), JSON.stringify(r.d));
console.log(JSON.stringify(qs.parse('x=hello%20world&y=a+b')));
console.log(JSON.stringify(qs.parse('k:v;k2:v2', ';', ':')));
console.log(Object.keys(qs.parse('')).length);
