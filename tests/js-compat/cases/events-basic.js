const EventEmitter = require('events');
const e = new EventEmitter();
e.on('x', (a, b) => console.log('x1', a, b));
e.on('x', function () { console.log('x2 this ok', this === e); });
console.log(e.emit('x', 1, 2));
console.log(e.emit('nothing'));
console.log(e.listenerCount('x'), e.eventNames());
