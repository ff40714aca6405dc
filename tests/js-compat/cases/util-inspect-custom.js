const util = require('util');
class Money {
  constructor(v) { this.v = v; }
  [util.inspect.custom](depth, options) {
    return `Money<${this.v}>`;
  }
}
console.log(util.inspect(new Money(5)));
console.log(new Money(7));
console.log({ wallet: new Money(9) });
console.log(util.inspect.custom === Symbol.for('nodejs.util.inspect.custom'));
const withObj = { [Symbol.for('nodejs.util.inspect.custom')]() { return { replaced: true }; } };
console.log(withObj);
