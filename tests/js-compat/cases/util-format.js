const util = require('util');
console.log(util.format('%s=%d', 'x', 5));
console.log(util.format('a', 'b', 1, { c: 2 }));
console.log(util.format('%s', { nested: { obj: 1 } }));
console.log(util.format('%s', [1, [2, [3]]]));
console.log(util.format(1, 2, '3'));
console.log(util.format('%s %s', 'only one'));
console.log(util.format('%j', { toJSON() { return 'custom'; } }));
console.log(util.format('%d', 12n), util.format('%i', 42.9));
