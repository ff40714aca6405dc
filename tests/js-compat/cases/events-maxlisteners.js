const EventEmitter = require('events');
const e = new EventEmitter();
console.log(e.getMaxListeners(), EventEmitter.defaultMaxListeners);
e.setMaxListeners(1);
console.log(e.getMaxListeners());
e.setMaxListeners(0);
for (let i = 0; i < 20; i++) e.on('x', () => {});
console.log(e.listenerCount('x'));
