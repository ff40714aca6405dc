const EventEmitter = require('events');
const e = new EventEmitter();
e.on('m', () => console.log('second'));
e.prependListener('m', () => console.log('first'));
e.prependOnceListener('m', () => console.log('zeroth once'));
e.emit('m');
e.emit('m');
console.log(e.listeners('m').length, e.rawListeners('m').length);
