const order = [];
Promise.resolve().then(() => order.push('promise1'));
process.nextTick(() => order.push('tick1'));
queueMicrotask(() => order.push('micro1'));
process.nextTick(() => {
  order.push('tick2');
  process.nextTick(() => order.push('tick3'));
});
setTimeout(() => {
  order.push('timeout');
  console.log(order.join(' '));
}, 0);
order.push('sync');
