console.log(Array.isArray(process.argv), process.argv.length);
console.log(process.argv[1]);
console.log(typeof process.argv[0], typeof process.execPath);
console.log(process.argv.slice(2));
console.log(Array.isArray(process.execArgv));
