// `process`: arguments, environment, exit, clocks and the standard streams, all from the
// runner's native calls (so from the kernel: the environment the VM gives, its clocks).
import EventEmitter from 'events';
import { native } from './internal/native.js';
import { check, coded } from './internal/errors.js';
import { TextEncoder } from './internal/encoding.js';

export const NODE_VERSION = '22.12.0';
export const EXEC_PATH = '/usr/bin/node';

const process = new EventEmitter();
const env = {};
for (const entry of native.env) {
  const eq = entry.indexOf('=');
  if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
}

const startNs = native.hrtime();

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
    if (typeof callback !== 'function') throw new TypeError('The "callback" argument must be of type function');
    queueMicrotask(() => callback(...args));
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
  emitWarning(warning, type) {
    const text = typeof warning === 'string' ? `${type || 'Warning'}: ${warning}` : `${warning.name}: ${warning.message}`;
    writeAll(2, `(node:1) ${text}\n`);
  },
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
