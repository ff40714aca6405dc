const util = require('util');
const fn = util.deprecate(() => 'result', 'fn is deprecated', 'DEP_TEST');
console.log(fn());
console.log(fn());
console.log(typeof util.debuglog, typeof util.debuglog('test'));
const dbg = util.debuglog('nothing-enabled');
dbg('not printed');
console.log('enabled', dbg.enabled);
