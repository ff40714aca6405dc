const fs = require('fs');
fs.readFile(__filename, () => {
  const order = [];
  setTimeout(() => {
    order.push('timeout');
    if (order.length === 2) console.log(order.join(' '));
  }, 0);
  setImmediate(() => {
    order.push('immediate');
    if (order.length === 2) console.log(order.join(' '));
  });
});
