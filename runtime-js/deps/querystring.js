// The `querystring` builtin: npm `querystring-es3`, bundled on its own and parsed on first use.
module.exports = require('querystring-es3');
