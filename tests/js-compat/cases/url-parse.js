const url = require('url');
const u = url.parse('https://user:pw@example.com:8080/p/a/t/h?query=string&x=1#hash');
console.log(u.protocol, u.auth, u.host, u.port, u.hostname);
console.log(u.pathname, u.search, u.query, u.hash, u.path);
console.log(u.href);
const q = url.parse('/path?a=1&b=2&a=3', true);
console.log(q.query.a, q.query.b, q.pathname);
