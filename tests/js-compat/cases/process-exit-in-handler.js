setTimeout(() => console.log('never'), 1000);
process.on('exit', (code) => console.log('exiting with', code));
console.log('start');
Promise.resolve().then(() => {
  console.log('microtask');
  process.exit(0);
});
