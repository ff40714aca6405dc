const util = require('util');
console.log(util.inspect('a\nb'));
console.log(util.inspect({ text: 'line one\nline two\nline three is a bit longer to pass the width limit of eighty' }));
console.log(util.inspect('\u0000\u001b\u007f'));
console.log(util.inspect('emoji 😀 ok'));
console.log(util.inspect({ 'a b': 1, 'c-d': 2, e_f: 3, '0x': 4, 42: 5 }));
console.log(util.inspect(Symbol.for('registered')), util.inspect({ [Symbol.iterator]: 1 }));
