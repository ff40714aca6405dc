const { URL } = require('url');
const cases = [
  'http://EXAMPLE.com:80/a/./b/../c?q=1#f',
  'https://user:p%40ss@host.io:8443/x y',
  'file:///etc/hosts',
  'mailto:someone@example.com',
  'http://127.1/',
  'HTTPS://Example.COM',
];
for (const input of cases) {
  const u = new URL(input);
  console.log([u.href, u.protocol, u.host, u.pathname, u.search, u.hash, u.origin].join(' | '));
}
try { new URL('not a url'); } catch (e) { console.log(e.name, e.code); }
console.log(URL.canParse('http://x'), URL.canParse('nope'));
