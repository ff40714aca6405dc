console.log(typeof process.stdout.write, process.stdout.writable, typeof process.stdout.isTTY);
console.log(process.stdout.fd, process.stderr.fd, process.stdin.fd);
console.log(typeof process.stdout.on, typeof process.stdout.end, typeof process.stdout.once);
console.log(typeof process.exit, typeof process.kill, typeof process.abort);
console.log(typeof process.cpuUsage().user, typeof process.resourceUsage, typeof process.memoryUsage.rss());
console.log(process.config !== undefined, typeof process.features, Array.isArray(process.execArgv));
