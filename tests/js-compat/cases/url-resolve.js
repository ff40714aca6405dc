const url = require('url');
console.log(url.resolve('/one/two/three', 'four'));
console.log(url.resolve('http://example.com/', '/one'));
console.log(url.resolve('http://example.com/one', '/two'));
console.log(url.resolve('http://example.com/a/b/', '../c'));
console.log(url.resolve('http://example.com/a', 'http://other.com/z'));
