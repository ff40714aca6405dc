const { setTimeout: sleep } = require('timers/promises');
const ac = new AbortController();
sleep(1000, 'late', { signal: ac.signal }).then(
  () => console.log('resolved?'),
  (e) => console.log('rejected', e.name, e.code),
);
setTimeout(() => ac.abort(), 1);
