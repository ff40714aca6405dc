const assert = require('assert');
assert.deepStrictEqual({ a: [1, 2], b: { c: new Set([1]) } }, { a: [1, 2], b: { c: new Set([1]) } });
assert.deepEqual({ a: 1 }, { a: '1' });
try {
  assert.deepStrictEqual({ a: 1 }, { a: '1' });
} catch (e) {
  console.log('strict fails', e.code);
}
assert.notDeepStrictEqual([1], [2]);
try {
  assert.deepStrictEqual(new Map([[1, 'a']]), new Map([[1, 'b']]));
} catch (e) {
  console.log('map differs', e.name);
}
console.log('done');
