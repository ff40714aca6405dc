const EventEmitter = require('events');
const e = new EventEmitter();
const sym = Symbol('evt');
e.on(sym, (v) => console.log('symbol event', v));
e.emit(sym, 'ok');
console.log(e.eventNames().length, typeof e.eventNames()[0]);
console.log(EventEmitter.listenerCount(e, sym));
