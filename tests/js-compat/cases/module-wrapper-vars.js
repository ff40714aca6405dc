console.log(typeof require, typeof module, typeof exports, typeof __filename, typeof __dirname);
console.log(module.exports === exports, this === module.exports);
console.log(module.id, module.filename === __filename, module.loaded);
console.log(Array.isArray(module.paths), module.paths[0]);
console.log(typeof require.cache, typeof require.resolve.paths);
