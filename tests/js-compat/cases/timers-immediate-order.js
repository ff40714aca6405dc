const out = [];
setImmediate(() => {
  out.push('A');
  process.nextTick(() => out.push('A-tick'));
  Promise.resolve().then(() => out.push('A-promise'));
});
setImmediate(() => out.push('B'));
setImmediate(() => console.log(out.join(' ')));
