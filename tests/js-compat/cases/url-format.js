const url = require('url');
console.log(url.format({ protocol: 'http', hostname: 'example.com', pathname: '/x', query: { a: 1, b: 'two words' } }));
console.log(url.format({ protocol: 'https:', host: 'h.com:81', hash: '#frag', search: '?q=1' }));
console.log(url.format(url.parse('http://a.com/b?c=d')));
