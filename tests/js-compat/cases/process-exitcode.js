process.on('exit', (code) => {
  console.log('exit event', code, process.exitCode);
  process.exitCode = 0;
});
process.exitCode = 7;
console.log('set', process.exitCode);
