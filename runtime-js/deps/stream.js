// The `stream` builtin: npm `readable-stream`, bundled on its own and parsed on first use.
module.exports = require('readable-stream');
