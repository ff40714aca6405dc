// The `string_decoder` builtin: npm `string_decoder`, bundled on its own and parsed on first use.
module.exports = require('string_decoder/');
