console.log(typeof globalThis.crypto, typeof crypto.getRandomValues, typeof crypto.randomUUID);
const a = new Uint8Array(10);
crypto.getRandomValues(a);
console.log(a.length);
console.log(crypto.randomUUID().length);
