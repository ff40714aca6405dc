const out = [];
setTimeout(() => {
  out.push('t1');
  process.nextTick(() => out.push('t1-tick'));
  Promise.resolve().then(() => out.push('t1-promise'));
}, 1);
setTimeout(() => {
  out.push('t2');
}, 1);
setTimeout(() => console.log(out.join(' ')), 20);
