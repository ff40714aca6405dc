const u = new URL('https://example.com:8443/a/b?x=1&y=two#frag');
console.log(u.protocol, u.hostname, u.port, u.pathname, u.hash);
console.log(u.searchParams.get('y'), [...u.searchParams.keys()]);
u.searchParams.append('z', 'a b');
console.log(u.search);
console.log(new URL('../c', 'http://h.com/a/b/').href);
const sp = new URLSearchParams('a=1&a=2&b=3');
console.log(sp.getAll('a'), sp.toString());
