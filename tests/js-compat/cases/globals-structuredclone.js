const orig = { a: 1, nested: { list: [1, 2, { deep: true }] }, s: 'str', n: null };
const copy = structuredClone(orig);
console.log(JSON.stringify(copy) === JSON.stringify(orig), copy !== orig, copy.nested !== orig.nested);
copy.nested.list.push(4);
console.log(orig.nested.list.length, copy.nested.list.length);
const withDate = structuredClone({ d: new Date(0) });
console.log(withDate.d instanceof Date, withDate.d.getTime());
const m = structuredClone(new Map([[1, { x: 1 }]]));
console.log(m instanceof Map, m.get(1).x);
try { structuredClone(() => {}); } catch (e) { console.log(e.name); }
