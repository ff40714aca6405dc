process.on('uncaughtException', (err, origin) => {
  console.log('caught:', err.message, origin);
  process.exitCode = 0;
});
setTimeout(() => {
  console.log('before throw');
  throw new Error('boom');
}, 1);
setTimeout(() => console.log('still running'), 5);
