const os = require('os');
console.log(JSON.stringify(os.EOL), os.platform(), os.type());
console.log(typeof os.hostname(), typeof os.homedir(), typeof os.tmpdir());
console.log(typeof os.arch(), typeof os.release(), os.endianness());
console.log(Array.isArray(os.cpus()), os.cpus().length > 0);
console.log(typeof os.totalmem(), os.freemem() <= os.totalmem());
