console.log(typeof globalThis, globalThis === global);
globalThis.myGlobal = 5;
console.log(myGlobal);
console.log(typeof Buffer, typeof process, typeof setTimeout, typeof setImmediate);
console.log(typeof TextEncoder, typeof TextDecoder, typeof URLSearchParams === 'function' || 'no');
console.log(typeof console.log, typeof require('console').log);
