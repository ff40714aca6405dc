const assert = require('assert');
(async () => {
  await assert.rejects(Promise.reject(new Error('async fail')), /async fail/);
  await assert.rejects(async () => { throw new RangeError('r'); }, RangeError);
  await assert.doesNotReject(Promise.resolve(5));
  try {
    await assert.rejects(Promise.resolve('fine'));
  } catch (e) {
    console.log('did not reject:', e.code);
  }
  console.log('all good');
})();
