// The `url` builtin: npm `url`, bundled on its own and parsed on first use.
module.exports = require('url/');
