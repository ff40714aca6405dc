const { Readable, finished } = require('stream');
const r = new Readable({ read() {} });
r.on('error', (e) => console.log('error event', e.message));
r.on('close', () => console.log('close event', r.destroyed));
finished(r, (err) => console.log('finished cb', err && err.message));
r.destroy(new Error('kaboom'));
console.log('destroyed sync', r.destroyed);
