// The `util` builtin: the bundled npm `util` (types, inherits, callbackify, the old is* checks)
// with what Node has and it lacks or does differently: Node's inspect and format,
// isDeepStrictEqual, promisify with `util.promisify.custom` (Node's registered symbol),
// deprecate and debuglog as Node warns and logs, TextEncoder/TextDecoder,
// stripVTControlCharacters, toUSVString, getSystemErrorName/Map, styleText, parseArgs, aborted.
import { inspect, format, formatWithOptions, stripVTControlCharacters, isError } from './inspect.js';
import { isDeepStrictEqual } from './comparisons.js';
import { TextEncoder, TextDecoder } from './encoding.js';
import { LINUX_ERRNO, coded } from './errors.js';
import { parseArgs } from './parse_args.js';
import process from '../process.js';

export const promisifyCustom = Symbol.for('nodejs.util.promisify.custom');
export const customPromisifyArgs = Symbol.for('secure-exec.promisify.args');

export function promisify(original) {
  if (typeof original !== 'function') {
    throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "original" argument must be of type function');
  }
  if (original[promisifyCustom]) {
    const fn = original[promisifyCustom];
    if (typeof fn !== 'function') {
      throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "util.promisify.custom" argument must be of type function');
    }
    return Object.defineProperty(fn, promisifyCustom, { value: fn, enumerable: false, writable: false, configurable: true });
  }
  const argumentNames = original[customPromisifyArgs];
  function fn(...args) {
    return new Promise((resolve, reject) => {
      args.push((err, ...values) => {
        if (err) return reject(err);
        if (argumentNames !== undefined && values.length > 1) {
          const obj = {};
          for (let i = 0; i < argumentNames.length; i++) obj[argumentNames[i]] = values[i];
          resolve(obj);
        } else {
          resolve(values[0]);
        }
      });
      Reflect.apply(original, this, args);
    });
  }
  Object.setPrototypeOf(fn, Object.getPrototypeOf(original));
  Object.defineProperty(fn, promisifyCustom, { value: fn, enumerable: false, writable: false, configurable: true });
  const descriptors = Object.getOwnPropertyDescriptors(original);
  for (const key of ['length', 'name']) delete descriptors[key];
  return Object.defineProperties(fn, descriptors);
}
promisify.custom = promisifyCustom;

const warnedCodes = new Set();
export function deprecate(fn, msg, code) {
  if (typeof fn !== 'function') throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "fn" argument must be of type function');
  if (process.noDeprecation === true) return fn;
  let warned = false;
  function deprecated(...args) {
    if (!warned && !process.noDeprecation) {
      warned = true;
      if (code === undefined || !warnedCodes.has(code)) {
        if (code !== undefined) warnedCodes.add(code);
        process.emitWarning(msg, 'DeprecationWarning', code, deprecated);
      }
    }
    return new.target ? Reflect.construct(fn, args, new.target) : Reflect.apply(fn, this, args);
  }
  Object.setPrototypeOf(deprecated, fn);
  if (fn.prototype) deprecated.prototype = fn.prototype;
  return deprecated;
}

const debugs = new Map();
let debugPattern;
function debugEnabled(section) {
  if (debugPattern === undefined) {
    const value = process.env.NODE_DEBUG;
    debugPattern = value
      ? new RegExp(`^(${value.replace(/[|\\{}()[\]^$+?.]/g, '\\$&').replace(/\*/g, '.*').replace(/,/g, '$|^')})$`, 'i')
      : null;
  }
  return debugPattern !== null && debugPattern.test(section);
}

export function debuglog(section, callback) {
  section = String(section).toUpperCase();
  let logger = debugs.get(section);
  if (!logger) {
    const enabled = debugEnabled(section);
    logger = enabled
      ? (...args) => process.stderr.write(`${section} ${process.pid}: ${format(...args)}\n`)
      : () => {};
    Object.defineProperty(logger, 'enabled', { value: enabled, enumerable: true });
    debugs.set(section, logger);
    if (typeof callback === 'function') callback(logger);
  }
  return logger;
}

const ERRNO_MESSAGES = {
  EPERM: 'operation not permitted', ENOENT: 'no such file or directory', ESRCH: 'no such process',
  EINTR: 'interrupted system call', EIO: 'i/o error', EBADF: 'bad file descriptor', EAGAIN: 'resource temporarily unavailable',
  ENOMEM: 'not enough memory', EACCES: 'permission denied', EEXIST: 'file already exists', ENOTDIR: 'not a directory',
  EISDIR: 'illegal operation on a directory', EINVAL: 'invalid argument', EMFILE: 'too many open files',
  ENOSPC: 'no space left on device', EPIPE: 'broken pipe', ENOTEMPTY: 'directory not empty',
  ECONNREFUSED: 'connection refused', ECONNRESET: 'connection reset by peer', ETIMEDOUT: 'connection timed out',
  EADDRINUSE: 'address already in use',
};

export function getSystemErrorName(errno) {
  if (typeof errno !== 'number') throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "err" argument must be of type number');
  if (errno >= 0 || !Number.isSafeInteger(errno)) {
    throw coded(RangeError, 'ERR_OUT_OF_RANGE', `The value of "err" is out of range. It must be a negative integer. Received ${errno}`);
  }
  for (const [name, number] of Object.entries(LINUX_ERRNO)) if (number === -errno && name !== 'ENOTCAPABLE') return name;
  return `Unknown system error ${errno}`;
}

export function getSystemErrorMap() {
  const map = new Map();
  for (const [name, number] of Object.entries(LINUX_ERRNO)) {
    if (name === 'ENOTCAPABLE') continue;
    map.set(-number, [name, ERRNO_MESSAGES[name] ?? name.toLowerCase()]);
  }
  return map;
}

export function toUSVString(string) {
  const text = String(string);
  return typeof text.toWellFormed === 'function' ? text.toWellFormed()
    : text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

export function styleText(styles, text) {
  const list = Array.isArray(styles) ? styles : [styles];
  let out = String(text);
  for (const style of list) {
    const codes = inspect.colors[style];
    if (codes === undefined) {
      throw coded(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'format' must be one of: ${Object.keys(inspect.colors).join(', ')}. Received ${inspect(style)}`);
    }
    out = `\u001b[${codes[0]}m${out}\u001b[${codes[1]}m`;
  }
  return out;
}

export function aborted(signal, resource) {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/** The `util` builtin from the npm package's exports. */
export function makeUtil(npmUtil) {
  const util = npmUtil;
  Object.assign(util, {
    inspect,
    format,
    formatWithOptions,
    isDeepStrictEqual,
    promisify,
    deprecate,
    debuglog,
    debug: debuglog,
    TextEncoder,
    TextDecoder,
    stripVTControlCharacters,
    toUSVString,
    getSystemErrorName,
    getSystemErrorMap,
    styleText,
    parseArgs,
    aborted,
    isError,
  });
  if (util.types) {
    util.types.isNativeError ??= isError;
  }
  return util;
}
