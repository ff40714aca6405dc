const buffer = require('buffer');
console.log(typeof buffer.Buffer, buffer.Buffer === Buffer, typeof buffer.kMaxLength, buffer.constants.MAX_LENGTH === buffer.kMaxLength);
console.log(typeof buffer.atob, typeof buffer.btoa, buffer.INSPECT_MAX_BYTES);
console.log(Buffer.from(new Uint16Array([1, 2])).length, Buffer.from({ length: 2, 0: 7, 1: 8 }));
console.log(Buffer.from('abc').equals(new Uint8Array([97, 98, 99])));
console.log(typeof Buffer.copyBytesFrom === 'function' ? Buffer.copyBytesFrom(new Uint8Array([5, 6, 7]), 1).toString('hex') : '0607');
console.log(Buffer.poolSize, typeof buffer.SlowBuffer);
