let fired = 0;
const t = setTimeout(() => {
  fired++;
  console.log('fired once', fired);
}, 10);
setTimeout(() => t.refresh(), 5);
console.log(typeof t.refresh);
setTimeout(() => console.log('fired before 12?', fired), 12);
setTimeout(() => console.log('fired by 40?', fired), 40);
