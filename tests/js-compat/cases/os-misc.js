const os = require('os');
console.log(os.loadavg().length, typeof os.uptime());
console.log(typeof os.networkInterfaces());
const u = os.userInfo();
console.log(typeof u.username, typeof u.uid, typeof u.homedir);
console.log(typeof os.constants.signals.SIGINT, os.constants.signals.SIGTERM);
console.log(os.devNull);
console.log(typeof os.availableParallelism(), os.availableParallelism() >= 1);
