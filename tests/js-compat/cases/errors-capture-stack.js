class AppError extends Error {
  constructor(msg) {
    super(msg);
    Error.captureStackTrace(this, this.constructor);
    this.name = 'AppError';
  }
}
const e = new AppError('boom');
console.log(e.stack.split('\n')[0], e instanceof AppError, e instanceof Error);
const o = { message: 'plain object' };
Error.captureStackTrace(o);
o.name = 'Late';
console.log(o.stack.split('\n')[0]);
console.log(require('util').inspect(e).split('\n')[0]);
const changed = new Error('first');
changed.message = 'second';
console.log(changed.stack.split('\n')[0]);
const assigned = new Error('x');
assigned.stack = 'custom stack';
console.log(assigned.stack, Object.keys(assigned));
