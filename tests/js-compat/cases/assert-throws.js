const assert = require('assert');
assert.throws(() => { throw new TypeError('bad'); }, TypeError);
assert.throws(() => { throw new Error('match me'); }, /match/);
assert.throws(() => { throw Object.assign(new Error('x'), { code: 'E1' }); }, { code: 'E1', message: 'x' });
try {
  assert.throws(() => {});
} catch (e) {
  console.log('no throw:', e.code);
}
assert.doesNotThrow(() => 1);
try {
  assert.throws(() => { throw new Error('other'); }, /nomatch/);
} catch (e) {
  console.log('mismatch rethrown:', e.message);
}
console.log('ok');
