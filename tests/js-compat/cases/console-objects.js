console.log({ a: 1, b: 'two', c: [3, 4], d: { e: { f: { g: { h: 1 } } } } });
console.log([1, 'a', null, undefined, true]);
console.log({ 'key-with-dash': 1, valid_id: 2, 3: 'num' });
console.log({});
console.log([]);
console.log([[]], [{}]);
console.log({ fn() {}, arrow: () => {}, named: function foo() {} });
