process.nextTick((a, b, c) => console.log('args', a, b, c), 1, 'two', [3]);
process.nextTick(function () {
  console.log('this is undefined-ish:', this === undefined || this === globalThis || this === process);
});
try {
  process.nextTick('not a function');
} catch (e) {
  console.log(e.name, e.code);
}
