const EventEmitter = require('events');
console.log(process instanceof EventEmitter);
process.on('custom', (x) => console.log('custom', x));
process.emit('custom', 5);
let n = 0;
process.on('beforeExit', () => {
  if (n++ < 2) {
    console.log('beforeExit', n);
    setTimeout(() => console.log('more work', n), 1);
  }
});
process.on('exit', () => console.log('exit'));
