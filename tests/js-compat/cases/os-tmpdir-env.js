const os = require('os');
process.env.TMPDIR = '/tmp/jscompat-work/';
console.log(os.tmpdir());
process.env.TMPDIR = '/custom/tmp';
console.log(os.tmpdir());
process.env.HOME = '/home/tester';
console.log(os.homedir());
