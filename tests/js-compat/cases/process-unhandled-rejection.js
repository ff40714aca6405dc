process.on('unhandledRejection', (reason, promise) => {
  console.log('unhandled:', reason.message, promise instanceof Promise);
});
Promise.reject(new Error('nope'));
const p = Promise.reject(new Error('handled later'));
p.catch((e) => console.log('caught', e.message));
setTimeout(() => console.log('done'), 2);
