function inner() { throw new Error('deep'); }
function outer() { inner(); }
try {
  outer();
} catch (e) {
  console.log(typeof e.stack, e.stack.split('\n')[0]);
  console.log(e.stack.includes('inner'), e.stack.includes('outer'));
}
const e2 = new Error('captured');
const holder = {};
Error.captureStackTrace(holder);
console.log(typeof holder.stack);
