const timers = require('timers');
console.log(typeof timers.setTimeout, typeof timers.setImmediate, typeof timers.clearInterval);
console.log(timers.setTimeout === setTimeout);
timers.setTimeout(() => console.log('via module'), 1);
const p = require('timers').promises;
console.log(typeof p.setTimeout);
