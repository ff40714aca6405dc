const { constants } = require('os');
console.log(constants.signals.SIGKILL, constants.signals.SIGHUP, constants.signals.SIGUSR1);
console.log(constants.errno.ENOENT, constants.errno.EEXIST, constants.errno.EACCES);
console.log(constants.priority.PRIORITY_LOW, constants.priority.PRIORITY_HIGHEST);
