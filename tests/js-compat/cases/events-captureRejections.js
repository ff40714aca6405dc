const EventEmitter = require('events');
const e = new EventEmitter();
e.on('a', () => { throw new Error('listener threw'); });
try {
  e.emit('a');
} catch (err) {
  console.log('emit threw', err.message);
}
const e2 = new EventEmitter();
e2.once('b', (x) => x * 2);
console.log(e2.listeners('b').length, typeof e2.rawListeners('b')[0].listener);
e2.emit('b', 1);
console.log(e2.listeners('b').length);
