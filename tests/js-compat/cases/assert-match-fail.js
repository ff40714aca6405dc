const assert = require('assert');
assert.match('hello world', /world/);
try {
  assert.match('abc', /xyz/);
} catch (e) {
  console.log('no match', e.code);
}
try {
  assert.fail('explicit failure');
} catch (e) {
  console.log(e.message, e.code);
}
assert.doesNotMatch('abc', /z/);
try {
  assert.notEqual(1, 1);
} catch (e) {
  console.log(e.operator);
}
