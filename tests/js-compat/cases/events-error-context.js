const EventEmitter = require('events');
const e = new EventEmitter();
for (const value of [42, { reason: 'obj' }, undefined]) {
  try {
    e.emit('error', value);
  } catch (err) {
    console.log(err.code, err.context === value);
  }
}
const err = new TypeError('typed');
try { e.emit('error', err); } catch (caught) { console.log(caught === err); }
