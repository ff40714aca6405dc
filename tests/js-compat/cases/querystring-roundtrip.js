const qs = require('querystring');
const input = { name: 'John Doe', tags: ['a', 'b'], empty: '' };
const s = qs.stringify(input);
console.log(s);
const back = qs.parse(s);
console.log(back.name, back.tags.join('|'), JSON.stringify(back.empty));
console.log(qs.parse('a=1&a=2&a=3').a.length);
console.log(JSON.stringify(qs.parse('a=1&b=2&c=3', null, null, { maxKeys: 2 })));
