const t = process.hrtime();
console.log(Array.isArray(t), t.length, Number.isInteger(t[0]), Number.isInteger(t[1]));
const d = process.hrtime(t);
console.log(d[0] >= 0, d[1] >= 0, d[1] < 1e9);
const b = process.hrtime.bigint();
console.log(typeof b, process.hrtime.bigint() >= b);
console.log(typeof process.uptime(), process.uptime() >= 0);
const m = process.memoryUsage();
console.log(typeof m.heapUsed, typeof m.rss);
