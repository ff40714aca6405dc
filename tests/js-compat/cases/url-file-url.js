const url = require('url');
console.log(url.fileURLToPath('file:///tmp/jscompat-work/a%20b.txt'));
console.log(url.pathToFileURL('/tmp/jscompat-work/x y.js').href);
console.log(typeof url.URL, typeof url.URLSearchParams);
