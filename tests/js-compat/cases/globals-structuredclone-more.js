const a = { name: 'a' };
const graph = { left: a, right: a };
graph.self = graph;
const c = structuredClone(graph);
console.log(c.left === c.right, c.self === c, c.left !== a);
const s = structuredClone(new Set([1, { x: 2 }]));
console.log(s.size, [...s][1].x);
const buf = structuredClone(new Uint8Array([1, 2, 3]));
console.log(buf.constructor.name, Array.from(buf));
const e = structuredClone(new RangeError('bad range'));
console.log(e instanceof RangeError, e.message);
class Point { constructor() { this.x = 1; } get double() { return 2; } }
const p = structuredClone(new Point());
console.log(p.constructor === Object, p.x, p.double);
try { structuredClone({ f() {} }); } catch (err) { console.log(err.name); }
console.log(structuredClone(undefined), structuredClone(null), structuredClone(/re/gi).flags);
