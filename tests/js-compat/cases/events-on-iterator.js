const { EventEmitter, on } = require('events');
const e = new EventEmitter();
(async () => {
  setTimeout(() => {
    e.emit('data', 1);
    e.emit('data', 2);
    e.emit('data', 3);
  }, 1);
  let sum = 0;
  for await (const [v] of on(e, 'data')) {
    sum += v;
    console.log('value', v);
    if (v === 3) break;
  }
  console.log('sum', sum, e.listenerCount('data'));
})();
