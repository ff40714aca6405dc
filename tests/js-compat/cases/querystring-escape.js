const qs = require('querystring');
console.log(qs.escape('a b&c=d/é'));
console.log(qs.unescape('a%20b%26c'));
console.log(qs.unescape('%zz'));
console.log(qs.encode === qs.stringify, qs.decode === qs.parse);
