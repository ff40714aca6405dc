const path = require('path');
console.log(__filename);
console.log(__dirname);
console.log(path.basename(__filename));
console.log(path.dirname(__filename) === __dirname);
console.log(require.main === module);
