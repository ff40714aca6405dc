const util = require('util');
class Base {}
class Derived extends Base { constructor() { super(); this.v = 1; } }
console.log(util.inspect(Derived), util.inspect(new Derived()));
class Tagged { get [Symbol.toStringTag]() { return 'Special'; } }
console.log(util.inspect(new Tagged()));
function Legacy() { this.a = 1; }
console.log(util.inspect(new Legacy()));
console.log(util.inspect(Object.create(Derived.prototype)));
console.log(util.inspect(async function af() {}), util.inspect(function* gen() {}));
const fnWithProps = Object.assign(function tool() {}, { version: 2 });
console.log(util.inspect(fnWithProps));
(function () { console.log(util.inspect(arguments)); })(1, 'two');
