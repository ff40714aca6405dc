// Timers and immediates, run by the runner's event loop through `tick` (see bootstrap.js):
// one callback per tick, so microtasks run between callbacks as in Node. Time is the kernel's
// monotonic clock, so a run under the simulator replays.
import { native } from './internal/native.js';

const timers = []; // a binary heap of Timeout, by (when, seq)
const immediates = [];
let sequence = 0;
let refed = 0;

export function nowMs() {
  return Number(native.hrtime() / 1000000n);
}

function less(a, b) {
  return a._when < b._when || (a._when === b._when && a._seq < b._seq);
}

function push(timer) {
  timers.push(timer);
  let i = timers.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!less(timers[i], timers[parent])) break;
    [timers[i], timers[parent]] = [timers[parent], timers[i]];
    i = parent;
  }
}

function pop() {
  const top = timers[0];
  const last = timers.pop();
  if (timers.length > 0) {
    timers[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1, right = left + 1;
      let smallest = i;
      if (left < timers.length && less(timers[left], timers[smallest])) smallest = left;
      if (right < timers.length && less(timers[right], timers[smallest])) smallest = right;
      if (smallest === i) break;
      [timers[i], timers[smallest]] = [timers[smallest], timers[i]];
      i = smallest;
    }
  }
  return top;
}

export class Timeout {
  constructor(callback, delay, args, repeat) {
    delay = Number(delay);
    if (!(delay >= 1 && delay <= 2147483647)) delay = 1;
    this._callback = callback;
    this._args = args;
    this._delay = delay;
    this._repeat = repeat;
    this._active = true;
    this._refed = true;
    refed++;
    this._schedule();
  }
  _schedule() {
    this._when = nowMs() + this._delay;
    this._seq = sequence++;
    push(this);
  }
  ref() {
    if (!this._refed && this._active) refed++;
    this._refed = true;
    return this;
  }
  unref() {
    if (this._refed && this._active) refed--;
    this._refed = false;
    return this;
  }
  hasRef() {
    return this._refed;
  }
  refresh() {
    if (this._active) {
      this._when = nowMs() + this._delay;
      this._seq = sequence++;
      timers.sort((a, b) => (less(a, b) ? -1 : 1)); // a sorted array is a heap
    }
    return this;
  }
  close() {
    clearTimeout(this);
    return this;
  }
  [Symbol.toPrimitive]() {
    return this._seq;
  }
}

function cancel(timer) {
  if (timer && timer._active) {
    timer._active = false;
    if (timer._refed) refed--;
  }
}

export function setTimeout(callback, delay, ...args) {
  if (typeof callback !== 'function') throw callbackError(callback);
  return new Timeout(callback, delay, args, false);
}

export function setInterval(callback, delay, ...args) {
  if (typeof callback !== 'function') throw callbackError(callback);
  return new Timeout(callback, delay, args, true);
}

export const clearTimeout = cancel;
export const clearInterval = cancel;

export class Immediate {
  constructor(callback, args) {
    this._callback = callback;
    this._args = args;
    this._active = true;
    this._refed = true;
  }
  ref() { this._refed = true; return this; }
  unref() { this._refed = false; return this; }
  hasRef() { return this._refed; }
}

export function setImmediate(callback, ...args) {
  if (typeof callback !== 'function') throw callbackError(callback);
  const immediate = new Immediate(callback, args);
  immediates.push(immediate);
  return immediate;
}

export function clearImmediate(immediate) {
  if (immediate) immediate._active = false;
}

/**
 * Runs one due callback and returns 0, or returns how long (ms) until the next timer is due,
 * or -1 when nothing that keeps the program alive is left.
 */
export function runOne() {
  while (immediates.length > 0) {
    const immediate = immediates.shift();
    if (immediate._active) {
      immediate._active = false;
      immediate._callback(...immediate._args);
      return 0;
    }
  }
  while (timers.length > 0 && !timers[0]._active) pop();
  if (timers.length === 0) return -1;
  const wait = timers[0]._when - nowMs();
  if (wait > 0) return refed > 0 ? Math.min(wait, 2147483647) : -1;
  const timer = pop();
  if (timer._repeat) timer._schedule();
  else cancel(timer);
  timer._callback(...timer._args);
  return 0;
}

export function pendingImmediates() {
  return immediates.some((immediate) => immediate._active && immediate._refed);
}

function callbackError(callback) {
  const error = new TypeError(`The "callback" argument must be of type function. Received ${callback === null ? 'null' : typeof callback}`);
  error.code = 'ERR_INVALID_ARG_TYPE';
  return error;
}

function abortError(signal) {
  const error = new Error('The operation was aborted');
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  if (signal.reason !== undefined) error.cause = signal.reason;
  return error;
}

// timers/promises, with Node's options: `signal` (an abort rejects with an AbortError and clears
// the timer) and `ref` (false: the timer does not keep the program alive).
function promised(schedule, cancel, value, options = {}) {
  const { signal, ref = true } = options ?? {};
  if (signal && signal.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    let onAbort;
    const handle = schedule(() => {
      if (signal) signal.removeEventListener('abort', onAbort);
      resolve(value);
    });
    if (!ref) handle.unref();
    if (signal) {
      onAbort = () => {
        cancel(handle);
        reject(abortError(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}

export const promises = {
  setTimeout: (delay, value, options) => promised((done) => setTimeout(done, delay), clearTimeout, value, options),
  setImmediate: (value, options) => promised((done) => setImmediate(done), clearImmediate, value, options),
  async *setInterval(delay, value, options = {}) {
    const { signal, ref = true } = options ?? {};
    if (signal && signal.aborted) throw abortError(signal);
    let pending = 0;
    let wake = null;
    const interval = setInterval(() => {
      pending++;
      if (wake) {
        wake();
        wake = null;
      }
    }, delay);
    if (!ref) interval.unref();
    let onAbort;
    const aborted = signal ? new Promise((resolve, reject) => {
      onAbort = () => reject(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
    }) : null;
    aborted?.catch(() => {});
    try {
      for (;;) {
        if (pending === 0) {
          const tick = new Promise((resolve) => { wake = resolve; });
          await (aborted ? Promise.race([tick, aborted]) : tick);
        }
        if (pending > 0) {
          pending--;
          yield value;
        }
      }
    } finally {
      clearInterval(interval);
      if (signal) signal.removeEventListener('abort', onAbort);
    }
  },
  scheduler: {
    wait: (delay, options) => promised((done) => setTimeout(done, delay), clearTimeout, undefined, options),
    yield: () => new Promise((resolve) => setImmediate(resolve)),
  },
};
