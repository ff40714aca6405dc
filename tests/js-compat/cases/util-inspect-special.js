const util = require('util');
console.log(util.inspect(new Date(0)));
console.log(util.inspect(/ab+c/gi));
console.log(util.inspect(function named() {}), util.inspect(() => {}), util.inspect(class A {}));
console.log(util.inspect(Symbol('desc')), util.inspect(10n));
console.log(util.inspect(new Number(3)), util.inspect(new String('s')), util.inspect(new Boolean(false)));
console.log(util.inspect(undefined), util.inspect(-0), util.inspect([undefined, null]));
console.log(util.inspect(new Array(3)), util.inspect([1, , 3]));
console.log(util.inspect({ [Symbol('k')]: 1 }));
