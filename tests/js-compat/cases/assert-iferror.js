const assert = require('assert');
assert.ifError(null);
assert.ifError(undefined);
try {
  assert.ifError(new Error('real error'));
} catch (e) {
  console.log('ifError threw', e.message.includes('real error'));
}
class Custom extends Error {}
assert.throws(() => { throw new Custom('c'); }, Error);
assert.throws(() => { throw new Custom('c'); }, (err) => err instanceof Custom);
console.log('validated');
