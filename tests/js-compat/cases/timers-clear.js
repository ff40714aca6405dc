const t = setTimeout(() => console.log('should not run'), 5);
clearTimeout(t);
const i = setImmediate(() => console.log('immediate cancelled'));
clearImmediate(i);
clearTimeout(undefined);
clearTimeout(null);
let count = 0;
const iv = setInterval(() => {
  count++;
  console.log('interval', count);
  if (count === 3) clearInterval(iv);
}, 2);
setTimeout(() => console.log('end', count), 40);
