console.log(typeof performance, typeof performance.now());
const t0 = performance.now();
let x = 0;
for (let i = 0; i < 1000; i++) x += i;
console.log(performance.now() >= t0, x);
console.log(typeof performance.timeOrigin);
