const e = new Error('oops');
console.log(String(e));
console.log(e.message, e.name);
const t = new TypeError('bad type');
console.log(`${t}`);
console.log({ error: e.message });
class MyError extends Error {
  constructor(m) { super(m); this.name = 'MyError'; }
}
const m = new MyError('custom');
console.log(m.name, m instanceof Error, String(m));
