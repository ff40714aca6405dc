const url = require('url');
const a = url.parse('mailto:someone@example.com');
console.log(a.protocol, a.auth, a.hostname);
const b = url.parse('//cdn.example.com/lib.js', false, true);
console.log(b.host, b.pathname);
const c = url.parse('relative/path?x=1');
console.log(c.protocol, c.pathname, c.query);
console.log(url.parse('HTTP://EXAMPLE.COM/Path').href);
