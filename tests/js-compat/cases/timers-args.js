setTimeout((a, b) => {
  console.log('timeout args', a, b);
  setImmediate((...args) => console.log('immediate args', args), 'i', 3);
}, 1, 'x', 2);
const t = setTimeout(() => {}, 1);
console.log(typeof t.ref, typeof t.unref, typeof t.hasRef, t.hasRef());
t.unref();
console.log(t.hasRef());
const u = setTimeout(() => console.log('unref never runs'), 100000);
u.unref();
console.log(typeof t[Symbol.toPrimitive], typeof +u);
