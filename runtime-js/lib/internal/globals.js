// The globals every module may expect as it loads: set before any other module of the layer
// (and any bundled npm package) is evaluated.
import './error_stack.js'; // first: errors made while the layer loads get Node's stacks too
import { native } from './native.js';
import { TextEncoder, TextDecoder } from './encoding.js';
import './buffer_compat.js';
import './events_compat.js';
import { structuredClone } from './structured_clone.js';
import process from '../process.js';
import * as timers from '../timers.js';
import { Buffer } from 'buffer';

globalThis.process = process;
globalThis.global = globalThis;
globalThis.TextEncoder = TextEncoder;
globalThis.TextDecoder = TextDecoder;
globalThis.Buffer = Buffer;
for (const name of ['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval', 'setImmediate', 'clearImmediate']) {
  globalThis[name] = timers[name];
}
let performanceOrigin = 0n;
globalThis.performance = {
  timeOrigin: 0,
  now: () => Number(native.hrtime() - performanceOrigin) / 1e6,
  mark() {},
  measure() {},
  toJSON() { return { timeOrigin: this.timeOrigin }; },
};
globalThis.structuredClone = structuredClone;


import { DOMException, Event, EventTarget, AbortController, AbortSignal } from './web.js';
import { URL, URLSearchParams } from './url.js';
Object.assign(globalThis, { DOMException, Event, EventTarget, AbortController, AbortSignal, URL, URLSearchParams });

// What belongs to the process, set when its program starts (never as the layer loads): the
// performance clock's origin, and Math.random's seed.
export function startGlobals() {
  performanceOrigin = native.hrtime();
  globalThis.performance.timeOrigin = native.now();
  seedMathRandom();
}

// Math.random from the kernel's random source (QuickJS seeds it from the wall clock): the VM's
// seed decides it, so a run replays.
function seedMathRandom() {
  const seed = new Uint32Array(4);
  native.random(new Uint8Array(seed.buffer));
  let [a, b, c, d] = seed;
  if ((a | b | c | d) === 0) a = 1;
  // xoshiro128**: fast, 2^128 period, and a double from its top 53 bits.
  const next = () => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
  const rotl = (x, k) => (x << k) | (x >>> (32 - k));
  Math.random = function random() {
    return ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
  };
}
