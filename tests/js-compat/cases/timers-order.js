const log = [];
setTimeout(() => log.push('timeout 10'), 10);
setTimeout(() => log.push('timeout 0'), 0);
setTimeout(() => log.push('timeout 5'), 5);
process.nextTick(() => log.push('nextTick'));
Promise.resolve().then(() => log.push('promise'));
log.push('sync');
setTimeout(() => console.log(log.join(', ')), 30);
