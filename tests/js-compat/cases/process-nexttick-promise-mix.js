const out = [];
setTimeout(() => {
  Promise.resolve().then(() => out.push('p1'));
  process.nextTick(() => out.push('t1'));
  queueMicrotask(() => out.push('m1'));
  process.nextTick(() => {
    out.push('t2');
    Promise.resolve().then(() => out.push('p-from-t2'));
  });
}, 1);
setTimeout(() => {
  out.push('second timer');
  console.log(out.join(' '));
}, 5);
