const util = require('util');
console.log(util.inspect(Promise.resolve(42)));
const rejected = Promise.reject(new Error('no'));
rejected.catch(() => {});
console.log(util.inspect(rejected).split('\n')[0]);
console.log(util.inspect(new Promise(() => {})));
console.log(util.inspect({ p: Promise.resolve({ nested: true }) }));
console.log(util.inspect(new WeakSet()), util.inspect(new WeakMap()));
