// `crypto`: randomness from the kernel (seeded per VM, so a run replays) and the common
// digests (sha1, sha256, sha512 is not here; md5) and HMAC over them, in JavaScript.
import { Buffer } from 'buffer';
import { native } from './internal/native.js';
import { coded } from './internal/errors.js';

export function randomFillSync(buffer, offset = 0, size) {
  const bytes = new Uint8Array(buffer.buffer ?? buffer, buffer.byteOffset ?? 0, buffer.byteLength);
  size ??= bytes.length - offset;
  native.random(bytes.subarray(offset, offset + size));
  return buffer;
}

export function randomBytes(size, callback) {
  const buffer = randomFillSync(Buffer.allocUnsafe(size));
  if (callback) {
    setImmediate(() => callback(null, buffer));
    return undefined;
  }
  return buffer;
}

export function randomInt(min, max, callback) {
  if (max === undefined || typeof max === 'function') [min, max, callback] = [0, min, max];
  const range = max - min;
  if (!(range > 0) || range > 2 ** 48) throw coded(RangeError, 'ERR_OUT_OF_RANGE', 'The value of "max" is out of range');
  const limit = 2 ** 48 - (2 ** 48 % range);
  let value;
  do {
    const bytes = randomBytes(6);
    value = bytes.readUIntBE(0, 6);
  } while (value >= limit);
  const result = min + (value % range);
  if (callback) return void setImmediate(() => callback(null, result));
  return result;
}

export function randomUUID() {
  const bytes = randomBytes(16);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function getRandomValues(array) {
  if (array.byteLength > 65536) throw new DOMException('The ArrayBufferView byte length exceeds 65536', 'QuotaExceededError');
  native.random(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
  return array;
}

const rotl = (x, n) => (x << n) | (x >>> (32 - n));
const rotr = (x, n) => (x >>> n) | (x << (32 - n));

function padded(bytes, bigEndian) {
  const bitLength = bytes.length * 8;
  const total = (((bytes.length + 8) >> 6) + 1) << 6;
  const out = new Uint8Array(total);
  out.set(bytes);
  out[bytes.length] = 0x80;
  const view = new DataView(out.buffer);
  const high = Math.floor(bitLength / 2 ** 32), low = bitLength >>> 0;
  if (bigEndian) {
    view.setUint32(total - 8, high);
    view.setUint32(total - 4, low);
  } else {
    view.setUint32(total - 8, low, true);
    view.setUint32(total - 4, high, true);
  }
  return view;
}

const K256 = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

function sha256(bytes) {
  const view = padded(bytes, true);
  const h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  const w = new Uint32Array(64);
  for (let block = 0; block < view.byteLength; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) | 0, c, b, a, (t1 + t2) | 0];
    }
    [a, b, c, d, e, f, g, hh].forEach((value, i) => { h[i] = (h[i] + value) | 0; });
  }
  return words(h, true);
}

function sha1(bytes) {
  const view = padded(bytes, true);
  const h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
  const w = new Uint32Array(80);
  for (let block = 0; block < view.byteLength; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + i * 4);
    for (let i = 16; i < 80; i++) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    let [a, b, c, d, e] = h;
    for (let i = 0; i < 80; i++) {
      const [f, k] = i < 20 ? [(b & c) | (~b & d), 0x5a827999] : i < 40 ? [b ^ c ^ d, 0x6ed9eba1]
        : i < 60 ? [(b & c) | (b & d) | (c & d), 0x8f1bbcdc] : [b ^ c ^ d, 0xca62c1d6];
      const t = (rotl(a, 5) + f + e + k + w[i]) | 0;
      [e, d, c, b, a] = [d, c, rotl(b, 30), a, t];
    }
    [a, b, c, d, e].forEach((value, i) => { h[i] = (h[i] + value) | 0; });
  }
  return words(h, true);
}

const MD5_S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const MD5_K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0);

function md5(bytes) {
  const view = padded(bytes, false);
  const h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
  for (let block = 0; block < view.byteLength; block += 64) {
    const m = Array.from({ length: 16 }, (_, i) => view.getUint32(block + i * 4, true));
    let [a, b, c, d] = h;
    for (let i = 0; i < 64; i++) {
      let f, g;
      if (i < 16) [f, g] = [(b & c) | (~b & d), i];
      else if (i < 32) [f, g] = [(d & b) | (~d & c), (5 * i + 1) % 16];
      else if (i < 48) [f, g] = [b ^ c ^ d, (3 * i + 5) % 16];
      else [f, g] = [c ^ (b | ~d), (7 * i) % 16];
      const shift = MD5_S[(i >> 4) * 4 + (i % 4)];
      const next = (b + rotl((a + f + MD5_K[i] + m[g]) | 0, shift)) | 0;
      [a, d, c, b] = [d, c, b, next];
    }
    [a, b, c, d].forEach((value, i) => { h[i] = (h[i] + value) | 0; });
  }
  return words(h, false);
}

function words(h, bigEndian) {
  const out = Buffer.alloc(h.length * 4);
  h.forEach((value, i) => (bigEndian ? out.writeInt32BE(value, i * 4) : out.writeInt32LE(value, i * 4)));
  return out;
}

const DIGESTS = { sha256: [sha256, 64], sha1: [sha1, 64], md5: [md5, 64] };

function digestOf(algorithm) {
  const found = DIGESTS[String(algorithm).toLowerCase().replace('-', '')];
  if (!found) throw coded(Error, 'ERR_OSSL_EVP_UNSUPPORTED', `Digest method not supported: ${algorithm} (this runtime has ${Object.keys(DIGESTS).join(', ')})`);
  return found;
}

function toBuffer(data, encoding) {
  if (typeof data === 'string') return Buffer.from(data, encoding || 'utf8');
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "data" argument must be of type string or an instance of Buffer, TypedArray, or DataView.');
}

class Hash {
  constructor(algorithm) {
    this._digest = digestOf(algorithm);
    this._parts = [];
    this._done = false;
  }
  update(data, encoding) {
    if (this._done) throw coded(Error, 'ERR_CRYPTO_HASH_FINALIZED', 'Digest already called');
    this._parts.push(toBuffer(data, encoding));
    return this;
  }
  digest(encoding) {
    if (this._done) throw coded(Error, 'ERR_CRYPTO_HASH_FINALIZED', 'Digest already called');
    this._done = true;
    const out = this._result(Buffer.concat(this._parts));
    return encoding && encoding !== 'buffer' ? out.toString(encoding) : out;
  }
  _result(bytes) {
    return this._digest[0](bytes);
  }
  copy() {
    const copy = Object.create(Object.getPrototypeOf(this));
    Object.assign(copy, this, { _parts: [...this._parts] });
    return copy;
  }
}

class Hmac extends Hash {
  constructor(algorithm, key) {
    super(algorithm);
    const [hash, blockSize] = this._digest;
    let keyBytes = toBuffer(key);
    if (keyBytes.length > blockSize) keyBytes = hash(keyBytes);
    this._key = Buffer.concat([keyBytes, Buffer.alloc(blockSize - keyBytes.length)]);
  }
  _result(bytes) {
    const hash = this._digest[0];
    const inner = hash(Buffer.concat([Buffer.from(this._key.map((b) => b ^ 0x36)), bytes]));
    return hash(Buffer.concat([Buffer.from(this._key.map((b) => b ^ 0x5c)), inner]));
  }
}

export const createHash = (algorithm) => new Hash(algorithm);
export const createHmac = (algorithm, key) => new Hmac(algorithm, key);
export const getHashes = () => Object.keys(DIGESTS);
export const hash = (algorithm, data, encoding = 'hex') => createHash(algorithm).update(data).digest(encoding);

export function timingSafeEqual(a, b) {
  if (a.byteLength !== b.byteLength) throw coded(RangeError, 'ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH', 'Input buffers must have the same byte length');
  let difference = 0;
  for (let i = 0; i < a.byteLength; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

export const webcrypto = { getRandomValues, randomUUID };

export default { randomBytes, randomFillSync, randomInt, randomUUID, getRandomValues, createHash, createHmac, getHashes, hash, timingSafeEqual, webcrypto };
