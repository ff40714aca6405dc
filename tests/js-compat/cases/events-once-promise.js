const { EventEmitter, once } = require('events');
const e = new EventEmitter();
(async () => {
  setTimeout(() => e.emit('ready', 'a', 'b'), 1);
  const args = await once(e, 'ready');
  console.log('got', args);
  setTimeout(() => e.emit('error', new Error('bad')), 1);
  try {
    await once(e, 'never');
  } catch (err) {
    console.log('rejected', err.message);
  }
})();
