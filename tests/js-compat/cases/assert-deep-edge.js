const assert = require('assert');
const check = (name, fn) => {
  try { fn(); console.log(name, 'equal'); } catch (e) { console.log(name, 'differ'); }
};
check('nan', () => assert.deepStrictEqual(NaN, NaN));
check('zero', () => assert.deepStrictEqual(0, -0));
check('proto', () => assert.deepStrictEqual(Object.create(null), {}));
check('dates', () => assert.deepStrictEqual(new Date(1), new Date(1)));
check('regexp', () => assert.deepStrictEqual(/a/g, /a/i));
check('buffers', () => assert.deepStrictEqual(Buffer.from('a'), Buffer.from('a')));
check('loose-arr', () => assert.deepEqual([1, 2], ['1', '2']));
check('sparse', () => assert.deepStrictEqual([1, , 3], [1, undefined, 3]));
