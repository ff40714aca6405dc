const assert = require('assert');
assert(true);
assert.ok(1);
assert.equal(1, '1');
assert.strictEqual('a', 'a');
assert.notStrictEqual(1, '1');
try {
  assert.strictEqual(1, 2);
} catch (e) {
  console.log(e.name, e.code, e.actual, e.expected, e.operator);
}
try {
  assert(false, 'custom message');
} catch (e) {
  console.log(e.message, e instanceof assert.AssertionError);
}
console.log('ok');
