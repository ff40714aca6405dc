// The `util` builtin: npm `util`, bundled on its own and parsed on first use.
module.exports = require('util/');
