process.on('exit', (code) => {
  console.log('exit code was', code);
  process.exitCode = 0;
});
process.on('uncaughtException', (e) => {
  console.log('handler', e.message);
  process.exitCode = 3;
});
setTimeout(() => { throw new Error('in timer'); }, 1);
