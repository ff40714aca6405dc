// What Node's `events` has beyond the bundled npm `events` (3.3): an unhandled 'error' that is
// not an Error throws ERR_UNHANDLED_ERROR, `errorMonitor`, `on` (an async iterator of events),
// `once` with an AbortSignal, `getEventListeners`, `setMaxListeners`, `addAbortListener`.
import EventEmitter from 'events';
import { inspect } from './inspect.js';

const errorMonitor = Symbol('events.errorMonitor');

function coded(Base, code, message) {
  const error = new Base(message);
  error.code = code;
  return error;
}

function abortError(signal) {
  const error = new Error('The operation was aborted');
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  if (signal && signal.reason !== undefined) error.cause = signal.reason;
  return error;
}

const originalEmit = EventEmitter.prototype.emit;
EventEmitter.prototype.emit = function emit(type) {
  if (type !== 'error') return Reflect.apply(originalEmit, this, arguments);
  const args = Array.prototype.slice.call(arguments, 1);
  const events = this._events;
  if (events !== undefined && events[errorMonitor] !== undefined) Reflect.apply(originalEmit, this, [errorMonitor, ...args]);
  if (events === undefined || events.error === undefined) {
    const er = args[0];
    if (er instanceof Error) throw er;
    let shown;
    try {
      shown = inspect(er);
    } catch {
      shown = String(er);
    }
    const error = coded(Error, 'ERR_UNHANDLED_ERROR', `Unhandled error. (${shown})`);
    error.context = er;
    throw error;
  }
  return Reflect.apply(originalEmit, this, arguments);
};

function isEventTarget(target) {
  return target && typeof target.addEventListener === 'function' && typeof target.removeEventListener === 'function';
}

function validateSignal(signal) {
  if (signal !== undefined && (signal === null || typeof signal !== 'object' || !('aborted' in signal))) {
    throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "options.signal" property must be an instance of AbortSignal.');
  }
}

function once(emitter, name, options = {}) {
  const signal = options ? options.signal : undefined;
  validateSignal(signal);
  if (signal && signal.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const cleanups = [];
    const done = () => {
      for (const cleanup of cleanups) cleanup();
    };
    if (isEventTarget(emitter) && typeof emitter.on !== 'function') {
      const listener = (...args) => {
        done();
        resolve(args);
      };
      emitter.addEventListener(name, listener, { once: true });
      cleanups.push(() => emitter.removeEventListener(name, listener));
    } else {
      const listener = (...args) => {
        done();
        resolve(args);
      };
      emitter.on(name, listener);
      cleanups.push(() => emitter.removeListener(name, listener));
      if (name !== 'error') {
        const onError = (error) => {
          done();
          reject(error);
        };
        emitter.on('error', onError);
        cleanups.push(() => emitter.removeListener('error', onError));
      }
    }
    if (signal) {
      const onAbort = () => {
        done();
        reject(abortError(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      cleanups.push(() => signal.removeEventListener('abort', onAbort));
    }
  });
}

function on(emitter, event, options = {}) {
  const signal = options ? options.signal : undefined;
  validateSignal(signal);
  if (signal && signal.aborted) throw abortError(signal);
  const unconsumedEvents = [];
  const unconsumedPromises = [];
  let error = null;
  let finished = false;
  const closeEvents = options && Array.isArray(options.close) ? options.close : [];

  const eventHandler = (...args) => {
    const pending = unconsumedPromises.shift();
    if (pending) pending.resolve({ value: args, done: false });
    else unconsumedEvents.push(args);
  };
  const errorHandler = (err) => {
    finished = true;
    const pending = unconsumedPromises.shift();
    if (pending) pending.reject(err);
    else error = err;
    iterator.return();
  };
  const closeHandler = () => {
    finished = true;
    removeAll();
    while (unconsumedPromises.length > 0) unconsumedPromises.shift().resolve({ value: undefined, done: true });
  };
  const abortListener = () => errorHandler(abortError(signal));
  const listen = (name, handler) => {
    if (typeof emitter.on === 'function') emitter.on(name, handler);
    else emitter.addEventListener(name, handler);
  };
  const unlisten = (name, handler) => {
    if (typeof emitter.removeListener === 'function') emitter.removeListener(name, handler);
    else emitter.removeEventListener(name, handler);
  };
  const removeAll = () => {
    unlisten(event, eventHandler);
    if (event !== 'error') unlisten('error', errorHandler);
    for (const name of closeEvents) unlisten(name, closeHandler);
    if (signal) signal.removeEventListener('abort', abortListener);
  };

  listen(event, eventHandler);
  if (event !== 'error' && typeof emitter.on === 'function') emitter.on('error', errorHandler);
  for (const name of closeEvents) listen(name, closeHandler);
  if (signal) signal.addEventListener('abort', abortListener, { once: true });

  const iterator = Object.setPrototypeOf({
    next() {
      const value = unconsumedEvents.shift();
      if (value) return Promise.resolve({ value, done: false });
      if (error) {
        const p = Promise.reject(error);
        error = null;
        return p;
      }
      if (finished) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve, reject) => unconsumedPromises.push({ resolve, reject }));
    },
    return() {
      removeAll();
      finished = true;
      while (unconsumedPromises.length > 0) unconsumedPromises.shift().resolve({ value: undefined, done: true });
      return Promise.resolve({ value: undefined, done: true });
    },
    throw(err) {
      error = err;
      removeAll();
      return Promise.reject(err);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  }, Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype));
  return iterator;
}

function getEventListeners(emitter, name) {
  if (typeof emitter.listeners === 'function') return emitter.listeners(name);
  if (emitter && emitter._listeners instanceof Map) {
    return (emitter._listeners.get(name) ?? []).map((entry) => entry.listener);
  }
  return [];
}

function setMaxListeners(n = EventEmitter.defaultMaxListeners, ...targets) {
  if (targets.length === 0) EventEmitter.defaultMaxListeners = n;
  for (const target of targets) {
    if (typeof target.setMaxListeners === 'function') target.setMaxListeners(n);
  }
}

function getMaxListeners(emitter) {
  return typeof emitter.getMaxListeners === 'function' ? emitter.getMaxListeners() : EventEmitter.defaultMaxListeners;
}

function addAbortListener(signal, listener) {
  if (signal.aborted) queueMicrotask(() => listener());
  else signal.addEventListener('abort', listener, { once: true });
  const dispose = () => signal.removeEventListener('abort', listener);
  return { [Symbol.dispose ?? Symbol.for('nodejs.dispose')]: dispose };
}

Object.assign(EventEmitter, {
  once,
  on,
  errorMonitor,
  getEventListeners,
  getMaxListeners,
  setMaxListeners,
  addAbortListener,
  captureRejectionSymbol: Symbol.for('nodejs.rejection'),
  captureRejections: false,
});
EventEmitter.EventEmitterAsyncResource = EventEmitter;

export default EventEmitter;
