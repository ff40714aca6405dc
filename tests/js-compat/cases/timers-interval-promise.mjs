import { setInterval as every } from 'node:timers/promises';
let n = 0;
for await (const v of every(2, 'tick')) {
  n++;
  console.log(v, n);
  if (n === 3) break;
}
console.log('done');
