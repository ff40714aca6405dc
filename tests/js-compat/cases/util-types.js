const { types } = require('util');
console.log(types.isPromise(Promise.resolve()), types.isPromise({ then() {} }));
console.log(types.isDate(new Date()), types.isRegExp(/x/));
console.log(types.isMap(new Map()), types.isSet(new Set()));
console.log(types.isTypedArray(new Uint8Array(1)), types.isUint8Array(Buffer.alloc(1)));
console.log(types.isAsyncFunction(async () => {}), types.isGeneratorFunction(function* () {}));
console.log(types.isArrayBuffer(new ArrayBuffer(1)), types.isNativeError(new TypeError()));
console.log(require('util/types') === types || typeof require('util/types').isDate === 'function');
