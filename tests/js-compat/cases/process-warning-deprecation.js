process.on('warning', (w) => console.log(w.name, w.code, w.message));
process.emitWarning('old api', 'DeprecationWarning', 'DEP0999');
process.emitWarning('with options', { type: 'CustomWarning', code: 'C1', detail: 'more' });
process.emitWarning(new Error('error object'));
const util = require('util');
const dep = util.deprecate(() => 'x', 'deprecated fn', 'DEP_X');
dep();
dep();
console.log('sync end');
