const EventEmitter = require('events');
const e = new EventEmitter();
try {
  e.emit('error', new Error('unhandled!'));
} catch (err) {
  console.log('thrown', err.message);
}
e.on('error', (err) => console.log('handled', err.message));
e.emit('error', new Error('second'));
const e2 = new EventEmitter();
try {
  e2.emit('error', 'a string');
} catch (err) {
  console.log(err instanceof Error, err.code);
}
