const EventEmitter = require('events');
const util = require('util');
class Job extends EventEmitter {
  run() { this.emit('done', 42); }
}
const j = new Job();
j.on('done', (v) => console.log('class done', v));
j.run();
function Old() { EventEmitter.call(this); }
util.inherits(Old, EventEmitter);
const o = new Old();
o.on('hi', () => console.log('old style hi'));
o.emit('hi');
console.log(o instanceof EventEmitter, j instanceof EventEmitter);
