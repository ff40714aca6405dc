const out = [];
queueMicrotask(() => out.push('micro'));
Promise.resolve().then(() => out.push('promise'));
out.push('sync');
setTimeout(() => console.log(out.join(' ')), 0);
console.log(typeof queueMicrotask);
