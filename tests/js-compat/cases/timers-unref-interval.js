let n = 0;
const iv = setInterval(() => { n++; }, 1);
iv.unref();
setTimeout(() => {
  console.log('interval ran', n > 0);
  const { scheduler } = require('timers/promises');
  scheduler.wait(2).then(() => console.log('scheduler.wait done'));
}, 10);
