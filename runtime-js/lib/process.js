// `process`: arguments, environment, exit, clocks and the standard streams, all from the
// runner's native calls (so from the kernel: the environment the VM gives, its clocks).
import EventEmitter from 'events';
import { native } from './internal/native.js';
import { check, coded } from './internal/errors.js';
import { TextEncoder } from './internal/encoding.js';

export const NODE_VERSION = '22.12.0';
export const EXEC_PATH = '/usr/bin/node';

const process = new EventEmitter();
const envStore = {};
// process.env keeps strings, as Node's does: a value set is converted (`env.N = 42` reads '42').
const env = new Proxy(envStore, {
  set(target, key, value) {
    if (typeof key === 'symbol') throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'Cannot convert a Symbol value to a string');
    target[key] = String(value);
    return true;
  },
  defineProperty(target, key, descriptor) {
    if ('value' in descriptor) target[key] = String(descriptor.value);
    return true;
  },
});

// process.nextTick: its queue runs before promise reactions, when the script or a timer,
// immediate or I/O callback returns (the loop calls runTicks), as in Node; ticks queued from a
// promise reaction run on a microtask.
const ticks = [];
let drainScheduled = false;
const enqueueMicrotask = globalThis.queueMicrotask; // kept: a platform without it (bare) deletes the global
function scheduleDrain() {
  if (drainScheduled) return;
  drainScheduled = true;
  enqueueMicrotask(() => {
    drainScheduled = false;
    runTicks();
  });
}
/** Runs the queued nextTick callbacks, and those they queue, until none is left. */
export function runTicks() {
  while (ticks.length > 0) {
    const tick = ticks.shift();
    try {
      Reflect.apply(tick.callback, undefined, tick.args);
    } catch (error) {
      if (ticks.length > 0) scheduleDrain();
      throw error;
    }
  }
}

let warnedOnce = false;
function emitWarning(warning, type, code, ctor) {
  let detail;
  if (type !== null && typeof type === 'object' && !Array.isArray(type)) {
    ({ type, code, detail } = type);
  } else if (typeof type === 'function') {
    ctor = type;
    code = undefined;
    type = 'Warning';
  }
  if (typeof code === 'function') {
    ctor = code;
    code = undefined;
  }
  if (typeof warning === 'string') {
    const error = new Error(warning);
    error.name = String(type || 'Warning');
    if (code !== undefined) error.code = code;
    if (detail !== undefined) error.detail = detail;
    warning = error;
  } else if (!(warning instanceof Error)) {
    throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "warning" argument must be of type string or an instance of Error.');
  }
  if (warning.name === 'DeprecationWarning') {
    if (process.noDeprecation) return;
    if (process.throwDeprecation) throw warning;
  }
  process.nextTick(() => {
    if (!process.noProcessWarnings && !(warning.name === 'DeprecationWarning' && process.noDeprecation)) {
      let text = `(node:${process.pid}) ${warning.code ? `[${warning.code}] ` : ''}${warning.name}: ${warning.message}\n`;
      if (warning.detail) text += `${warning.detail}\n`;
      if (!warnedOnce) {
        warnedOnce = true;
        text += `(Use \`node --trace-${warning.name === 'DeprecationWarning' ? 'deprecation' : 'warnings'} ...\` to show where the warning was created)\n`;
      }
      writeAll(2, text);
    }
    process.emit('warning', warning);
  });
}

let startNs = 0n;

// What belongs to this process rather than to the layer: its environment and its clock's
// origin. Read when the program starts (bootstrap's `start`), never as the layer loads, so a
// layer loaded once serves every process.
export function startProcess() {
  for (const entry of native.env) {
    const eq = entry.indexOf('=');
    if (eq > 0) envStore[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  startNs = native.hrtime();
}

function hrtime(previous) {
  const now = native.hrtime();
  let seconds = Number(now / 1000000000n);
  let nanos = Number(now % 1000000000n);
  if (Array.isArray(previous)) {
    seconds -= previous[0];
    nanos -= previous[1];
    if (nanos < 0) {
      seconds -= 1;
      nanos += 1e9;
    }
  }
  return [seconds, nanos];
}
hrtime.bigint = () => native.hrtime();

let exiting = false;

Object.assign(process, {
  title: 'node',
  version: `v${NODE_VERSION}`,
  versions: { node: NODE_VERSION, quickjs: 'ng', modules: '127' },
  arch: 'wasm32',
  platform: 'linux',
  release: { name: 'node' },
  argv: [EXEC_PATH],
  argv0: 'node',
  execArgv: [],
  execPath: EXEC_PATH,
  env,
  pid: 1,
  ppid: 0,
  exitCode: undefined,
  config: { variables: {} },
  features: { inspector: false, ipv6: true, tls: false },
  hrtime,
  cwd() {
    return check(native.getcwd(), 'uv_cwd');
  },
  chdir(directory) {
    check(native.chdir(String(directory)), 'chdir', String(directory));
  },
  exit(code) {
    if (code !== undefined) process.exitCode = code;
    const status = exitStatus();
    if (!exiting) {
      exiting = true;
      process.emit('exit', status);
    }
    native.exit(exitStatus());
  },
  reallyExit(code) {
    native.exit(code | 0);
  },
  abort() {
    native.exit(134);
  },
  kill(pid) {
    throw coded(Error, 'ENOSYS', `process.kill(${pid}) is not supported by this runtime (secure-exec)`);
  },
  nextTick(callback, ...args) {
    if (typeof callback !== 'function') {
      throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "callback" argument must be of type function');
    }
    ticks.push({ callback, args });
    scheduleDrain();
  },
  uptime() {
    return Number(native.hrtime() - startNs) / 1e9;
  },
  memoryUsage: Object.assign(() => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }), {
    rss: () => 0,
  }),
  cpuUsage: () => ({ user: 0, system: 0 }),
  resourceUsage: () => ({}),
  umask: () => 0o022,
  getuid: () => 0,
  geteuid: () => 0,
  getgid: () => 0,
  getegid: () => 0,
  getgroups: () => [0],
  emitWarning,
  binding(name) {
    throw coded(Error, 'ERR_UNSUPPORTED', `process.binding('${name}') is not supported`);
  },
});

/** The status the process ends with: `exitCode` if set (and a number), else 0. */
export function exitStatus() {
  const code = Number(process.exitCode ?? 0);
  return Number.isInteger(code) ? code & 0xff : 1;
}

/** Writes all of `data` (a string or bytes) to `fd`, blocking; errors are thrown. */
export function writeAll(fd, data) {
  const bytes = typeof data === 'string' ? encodeUtf8(data) : data;
  let done = 0;
  while (done < bytes.length) {
    const written = native.write(fd, bytes, done, bytes.length - done, -1);
    if (written < 0) {
      if (written === -6) continue; // EAGAIN
      check(written, 'write');
    }
    done += written;
  }
}

let encoder;
export function encodeUtf8(text) {
  encoder ??= new TextEncoder();
  return encoder.encode(text);
}

export default process;
