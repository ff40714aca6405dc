// The `assert` builtin: npm `assert`, bundled on its own and parsed on first use.
module.exports = require('assert/');
