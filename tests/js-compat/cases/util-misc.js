const util = require('util');
console.log(util.isArray([]), util.isArray({}));
console.log(typeof util.inspect.defaultOptions, util.inspect.defaultOptions.depth);
console.log(util.stripVTControlCharacters('\u001b[31mred\u001b[39m'));
console.log(util.toUSVString ? util.toUSVString('a\ud800b') : 'a\ufffdb');
const { styleText } = util;
console.log(typeof util.types, typeof util.TextEncoder);
console.log(util.format('%s', Symbol('q')));
