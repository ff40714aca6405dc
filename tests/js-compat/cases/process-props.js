console.log(process.platform);
console.log(typeof process.pid, typeof process.ppid);
console.log(typeof process.version, process.version.startsWith('v'));
console.log(typeof process.versions.node, process.versions.node === process.version.slice(1));
console.log(typeof process.arch, typeof process.title);
console.log(typeof process.umask(), typeof process.getuid());
console.log(process.release.name);
