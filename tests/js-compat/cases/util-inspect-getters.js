const util = require('util');
const o = {
  get g() { return 1; },
  set s(v) {},
  get both() { return 2; },
  set both(v) {},
};
console.log(util.inspect(o));
console.log(util.inspect(o, { getters: true }));
const hidden = Object.defineProperty({ visible: 1 }, 'hidden', { value: 2, enumerable: false });
console.log(util.inspect(hidden));
console.log(util.inspect(hidden, { showHidden: true }));
