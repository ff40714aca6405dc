const assert = require('assert').strict;
const strict2 = require('assert/strict');
try {
  assert.equal(1, '1');
} catch (e) {
  console.log('strict equal fails', e.code);
}
try {
  strict2.deepEqual([1], ['1']);
} catch (e) {
  console.log('strict deepEqual fails', e.operator);
}
console.log(typeof strict2.strictEqual, assert.strict === assert);
