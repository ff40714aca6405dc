// `crypto`: randomness from the kernel (seeded per VM, so a run replays) and the common
// digests (sha1, sha256, sha384, sha512, md5) and HMAC over them, in JavaScript.
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

// SHA-512 and SHA-384: 64-bit words as (high, low) pairs of 32-bit integers. The round
// constants and initial values (fractions of the primes' cube and square roots) are computed
// exactly, with BigInt, on first use.
const PRIMES = [];
for (let n = 2; PRIMES.length < 80; n++) if (PRIMES.every((p) => n % p !== 0)) PRIMES.push(n);

function integerRoot(value, k) {
  // floor(value ** (1/k)) by Newton's method.
  let x = 1n << BigInt(Math.ceil(value.toString(2).length / k));
  for (;;) {
    const next = ((BigInt(k) - 1n) * x + value / x ** BigInt(k - 1)) / BigInt(k);
    if (next >= x) return x;
    x = next;
  }
}

function fractionWords(primes, k) {
  const words = new Int32Array(primes.length * 2);
  const mask = (1n << 64n) - 1n;
  primes.forEach((p, i) => {
    const fraction = integerRoot(BigInt(p) << BigInt(64 * k), k) & mask;
    words[2 * i] = Number(fraction >> 32n);
    words[2 * i + 1] = Number(fraction & 0xffffffffn);
  });
  return words;
}

let sha512Constants;
function sha512Tables() {
  sha512Constants ??= {
    k: fractionWords(PRIMES, 3),
    sha512: fractionWords(PRIMES.slice(0, 8), 2),
    sha384: fractionWords(PRIMES.slice(8, 16), 2),
  };
  return sha512Constants;
}

function sha512Family(bytes, initial, outputWords) {
  const { k } = sha512Tables();
  const total = (((bytes.length + 16) >> 7) + 1) << 7;
  const data = new Uint8Array(total);
  data.set(bytes);
  data[bytes.length] = 0x80;
  const view = new DataView(data.buffer);
  const bits = bytes.length * 8;
  view.setUint32(total - 4, bits >>> 0);
  view.setUint32(total - 8, Math.floor(bits / 2 ** 32));
  const h = Int32Array.from(initial);
  const w = new Int32Array(160);
  const v = new Int32Array(16);
  for (let block = 0; block < total; block += 128) {
    for (let i = 0; i < 32; i++) w[i] = view.getInt32(block + i * 4);
    for (let i = 16; i < 80; i++) {
      // sigma0 = rotr1 ^ rotr8 ^ shr7 of w[i-15]; sigma1 = rotr19 ^ rotr61 ^ shr6 of w[i-2]
      let xh = w[2 * (i - 15)], xl = w[2 * (i - 15) + 1];
      const s0h = ((xh >>> 1) | (xl << 31)) ^ ((xh >>> 8) | (xl << 24)) ^ (xh >>> 7);
      const s0l = ((xl >>> 1) | (xh << 31)) ^ ((xl >>> 8) | (xh << 24)) ^ ((xl >>> 7) | (xh << 25));
      xh = w[2 * (i - 2)];
      xl = w[2 * (i - 2) + 1];
      const s1h = ((xh >>> 19) | (xl << 13)) ^ ((xl >>> 29) | (xh << 3)) ^ (xh >>> 6);
      const s1l = ((xl >>> 19) | (xh << 13)) ^ ((xh >>> 29) | (xl << 3)) ^ ((xl >>> 6) | (xh << 26));
      const lo = (w[2 * (i - 16) + 1] >>> 0) + (s0l >>> 0) + (w[2 * (i - 7) + 1] >>> 0) + (s1l >>> 0);
      w[2 * i] = w[2 * (i - 16)] + s0h + w[2 * (i - 7)] + s1h + Math.floor(lo / 0x100000000);
      w[2 * i + 1] = lo;
    }
    v.set(h);
    for (let i = 0; i < 80; i++) {
      const ah = v[0], al = v[1], bh = v[2], bl = v[3], ch = v[4], cl = v[5];
      const eh = v[8], el = v[9], fh = v[10], fl = v[11], gh = v[12], gl = v[13], hh = v[14], hl = v[15];
      // Sigma1(e) = rotr14 ^ rotr18 ^ rotr41; Sigma0(a) = rotr28 ^ rotr34 ^ rotr39
      const S1h = ((eh >>> 14) | (el << 18)) ^ ((eh >>> 18) | (el << 14)) ^ ((el >>> 9) | (eh << 23));
      const S1l = ((el >>> 14) | (eh << 18)) ^ ((el >>> 18) | (eh << 14)) ^ ((eh >>> 9) | (el << 23));
      const chh = (eh & fh) ^ (~eh & gh), chl = (el & fl) ^ (~el & gl);
      const t1l = (hl >>> 0) + (S1l >>> 0) + (chl >>> 0) + (k[2 * i + 1] >>> 0) + (w[2 * i + 1] >>> 0);
      const t1h = (hh + S1h + chh + k[2 * i] + w[2 * i] + Math.floor(t1l / 0x100000000)) | 0;
      const S0h = ((ah >>> 28) | (al << 4)) ^ ((al >>> 2) | (ah << 30)) ^ ((al >>> 7) | (ah << 25));
      const S0l = ((al >>> 28) | (ah << 4)) ^ ((ah >>> 2) | (al << 30)) ^ ((ah >>> 7) | (al << 25));
      const majh = (ah & bh) ^ (ah & ch) ^ (bh & ch), majl = (al & bl) ^ (al & cl) ^ (bl & cl);
      const t2l = (S0l >>> 0) + (majl >>> 0);
      const t2h = (S0h + majh + Math.floor(t2l / 0x100000000)) | 0;
      v.copyWithin(2, 0, 14); // h=g, g=f, f=e, e=d, d=c, c=b, b=a
      const el2 = (v[9] >>> 0) + (t1l >>> 0); // e = d + t1
      v[8] = v[8] + t1h + Math.floor(el2 / 0x100000000);
      v[9] = el2;
      const al2 = (t1l >>> 0) + (t2l >>> 0); // a = t1 + t2
      v[0] = t1h + t2h + Math.floor(al2 / 0x100000000);
      v[1] = al2;
    }
    for (let i = 0; i < 16; i += 2) {
      const lo = (h[i + 1] >>> 0) + (v[i + 1] >>> 0);
      h[i] = h[i] + v[i] + Math.floor(lo / 0x100000000);
      h[i + 1] = lo;
    }
  }
  return words(Array.from(h.subarray(0, outputWords)), true);
}

const sha512 = (bytes) => sha512Family(bytes, sha512Tables().sha512, 16);
const sha384 = (bytes) => sha512Family(bytes, sha512Tables().sha384, 12);

const DIGESTS = { sha256: [sha256, 64], sha1: [sha1, 64], md5: [md5, 64], sha512: [sha512, 128], sha384: [sha384, 128] };

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

/** PBKDF2 (RFC 8018) over HMAC with `digest`. */
export function pbkdf2Sync(password, salt, iterations, keylen, digest) {
  if (typeof digest !== 'string') throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "digest" argument must be of type string.');
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw coded(RangeError, 'ERR_OUT_OF_RANGE', `The value of "iterations" is out of range. It must be >= 1 && <= 2147483647. Received ${iterations}`);
  }
  if (!Number.isInteger(keylen) || keylen < 0) {
    throw coded(RangeError, 'ERR_OUT_OF_RANGE', `The value of "keylen" is out of range. It must be >= 0 && <= 2147483647. Received ${keylen}`);
  }
  const [hash, blockSize] = digestOf(digest);
  let key = toBuffer(password);
  if (key.length > blockSize) key = hash(key);
  const padded = Buffer.concat([key, Buffer.alloc(blockSize - key.length)]);
  const inner = Buffer.from(padded.map((b) => b ^ 0x36));
  const outer = Buffer.from(padded.map((b) => b ^ 0x5c));
  const hmac = (data) => hash(Buffer.concat([outer, hash(Buffer.concat([inner, data]))]));
  const saltBytes = toBuffer(salt);
  const out = Buffer.alloc(keylen);
  for (let block = 1, done = 0; done < keylen; block++) {
    const index = Buffer.alloc(4);
    index.writeUInt32BE(block);
    let u = hmac(Buffer.concat([saltBytes, index]));
    const t = Buffer.from(u);
    for (let i = 1; i < iterations; i++) {
      u = hmac(u);
      for (let j = 0; j < t.length; j++) t[j] ^= u[j];
    }
    done += t.copy(out, done, 0, Math.min(t.length, keylen - done));
  }
  return out;
}

export function pbkdf2(password, salt, iterations, keylen, digest, callback) {
  if (typeof callback !== 'function') throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "callback" argument must be of type function.');
  // Bad arguments throw here, as Node's do; the key comes on a later turn.
  const result = pbkdf2Sync(password, salt, iterations, keylen, digest);
  setImmediate(() => callback(null, result));
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

export default { pbkdf2, pbkdf2Sync, randomBytes, randomFillSync, randomInt, randomUUID, getRandomValues, createHash, createHmac, getHashes, hash, timingSafeEqual, webcrypto };
