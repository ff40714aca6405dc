// `child_process`: other commands of the VM, started through the kernel (the `host_process`
// calls), so the VM's permission policy and limits apply to them as to any process.
//
// The synchronous forms are exact. The asynchronous ones (`spawn`, `exec`, `execFile`) run the
// child to its end before their events fire: a program that talks to a running child
// interactively over its stdin is not supported yet.
import EventEmitter from 'events';
import { Buffer } from 'buffer';
import { native } from './internal/native.js';
import { systemError, errnoName, coded } from './internal/errors.js';
import { registry } from './internal/registry.js';
import { POLLIN, POLLHUP } from './internal/io.js';

// Output kept per stream before the child is ended with ENOBUFS (Node's default).
const DEFAULT_MAX_BUFFER = 1024 * 1024;
const CLOSED_FD = -1; // u32::MAX: the child gets no descriptor there

function shellFor(shell) {
  if (typeof shell === 'string') return shell;
  return native.stat('/bin/sh', true) instanceof Array ? '/bin/sh' : 'sh';
}

function normalizeStdio(stdio) {
  if (stdio === undefined) return ['pipe', 'pipe', 'pipe'];
  if (typeof stdio === 'string') return [stdio, stdio, stdio];
  return [0, 1, 2].map((i) => stdio[i] ?? 'pipe');
}

function envArray(env) {
  return Object.entries(env ?? process.env).filter(([, value]) => value !== undefined).map(([key, value]) => `${key}=${value}`);
}

function closeQuietly(fd) {
  if (fd >= 0) native.close(fd);
}

/** Runs a child to its end: { pid, status, signal, stdout, stderr, error }. */
function runChild(file, args, options) {
  const stdio = normalizeStdio(options.stdio);
  const maxBuffer = options.maxBuffer ?? DEFAULT_MAX_BUFFER;
  const childFds = [];
  const parentFds = [];
  const toClose = [];
  const fail = (result, syscall) => {
    for (const fd of [...toClose, ...parentFds]) closeQuietly(fd);
    return { pid: 0, status: null, signal: null, stdout: null, stderr: null, error: spawnError(result, syscall, file, args) };
  };
  for (let i = 0; i < 3; i++) {
    const how = stdio[i];
    if (how === 'pipe' || how === 'overlapped') {
      const pair = native.pipe();
      if (typeof pair === 'number') return fail(pair, 'pipe');
      const [read, write] = pair;
      childFds.push(i === 0 ? read : write);
      parentFds.push(i === 0 ? write : read);
      toClose.push(i === 0 ? read : write);
    } else if (how === 'inherit') {
      childFds.push(i);
      parentFds.push(-1);
    } else if (typeof how === 'number') {
      childFds.push(how);
      parentFds.push(-1);
    } else {
      childFds.push(CLOSED_FD);
      parentFds.push(-1);
    }
  }
  const argv = [file, ...args.map(String)];
  const cwd = options.cwd ? String(options.cwd) : '';
  const pid = native.spawn(argv, envArray(options.env), cwd, childFds[0], childFds[1], childFds[2]);
  for (const fd of toClose) closeQuietly(fd);
  if (pid < 0) {
    for (const fd of parentFds) closeQuietly(fd);
    return { pid: 0, status: null, signal: null, stdout: null, stderr: null, error: spawnError(pid, 'spawnSync ' + file, file, args) };
  }
  if (parentFds[0] >= 0) {
    if (options.input !== undefined && options.input !== null) {
      const input = typeof options.input === 'string' ? Buffer.from(options.input, options.encoding && options.encoding !== 'buffer' ? options.encoding : 'utf8') : options.input;
      let done = 0;
      while (done < input.length) {
        const n = native.write(parentFds[0], input, done, input.length - done, -1);
        if (n < 0) break; // the child stopped reading (EPIPE): what it read is what it gets
        done += n;
      }
    }
    closeQuietly(parentFds[0]);
  }
  const outputs = [[], []];
  const sizes = [0, 0];
  let open = [parentFds[1], parentFds[2]].filter((fd) => fd >= 0);
  let overflow = false;
  const chunk = Buffer.allocUnsafe(65536);
  while (open.length > 0) {
    const ready = native.poll(open);
    if (typeof ready === 'number') break;
    const still = [];
    open.forEach((fd, index) => {
      if (!(ready[index] & (POLLIN | POLLHUP))) return still.push(fd);
      const n = native.read(fd, chunk, 0, chunk.length, -1);
      if (n <= 0) return closeQuietly(fd);
      const which = fd === parentFds[1] ? 0 : 1;
      sizes[which] += n;
      if (sizes[which] > maxBuffer) {
        overflow = true;
        closeQuietly(fd);
        return undefined;
      }
      outputs[which].push(Buffer.from(chunk.subarray(0, n)));
      still.push(fd);
    });
    open = still;
    if (overflow) {
      native.kill(pid, 15);
      for (const fd of open) closeQuietly(fd);
      open = [];
    }
  }
  const waited = native.waitpid(pid);
  const status = typeof waited === 'number' ? null : waited[0];
  const decode = (parts, fd) => {
    if (fd < 0) return null;
    const buffer = Buffer.concat(parts);
    return options.encoding && options.encoding !== 'buffer' ? buffer.toString(options.encoding) : buffer;
  };
  const result = {
    pid,
    status: overflow ? null : status,
    signal: overflow ? 'SIGTERM' : null,
    stdout: decode(outputs[0], parentFds[1]),
    stderr: decode(outputs[1], parentFds[2]),
  };
  result.output = [null, result.stdout, result.stderr];
  if (overflow) result.error = coded(RangeError, 'ENOBUFS', `spawnSync ${file} ENOBUFS`);
  return result;
}

function spawnError(result, syscall, file, args) {
  const error = systemError(result, syscall, file);
  error.message = `${syscall} ${errnoName(result)}`.replace(/^(spawnSync \S+) (spawnSync \S+) /, '$1 ');
  error.path = file;
  error.spawnargs = args;
  return error;
}

function parseArgs(file, args, options) {
  if (!Array.isArray(args)) {
    options = args;
    args = [];
  }
  options = { ...(options || {}) };
  if (options.shell) {
    const command = [file, ...args].join(' ');
    return { file: shellFor(options.shell), args: ['-c', command], options };
  }
  return { file, args, options };
}

export function spawnSync(file, args, options) {
  ({ file, args, options } = parseArgs(file, args, options));
  return runChild(file, args, options);
}

function checkResult(result, description, options) {
  if (result.error) throw result.error;
  if (result.status !== 0) {
    const stderr = result.stderr ? result.stderr.toString() : '';
    const error = new Error(`Command failed: ${description}${stderr ? `\n${stderr}` : ''}`);
    Object.assign(error, { status: result.status, signal: result.signal, output: result.output, pid: result.pid, stdout: result.stdout, stderr: result.stderr });
    throw error;
  }
  return result.stdout;
}

export function execSync(command, options = {}) {
  const stdio = options.stdio ?? ['pipe', 'pipe', 'inherit'];
  const result = runChild(shellFor(options.shell), ['-c', String(command)], { ...options, stdio });
  return checkResult(result, command, options);
}

export function execFileSync(file, args, options) {
  ({ file, args, options } = parseArgs(file, args, options));
  const stdio = options.stdio ?? ['pipe', 'pipe', 'inherit'];
  const result = runChild(file, args, { ...options, stdio });
  return checkResult(result, [file, ...args].join(' '), options);
}

export class ChildProcess extends EventEmitter {
  constructor() {
    super();
    this.pid = undefined;
    this.exitCode = null;
    this.signalCode = null;
    this.killed = false;
    this.stdin = null;
    this.stdout = null;
    this.stderr = null;
    this.stdio = [null, null, null];
    this.spawnfile = '';
    this.spawnargs = [];
  }
  kill() {
    return false; // it has already run to its end
  }
  ref() {}
  unref() {}
}

function readableOf(data) {
  const { Readable } = registry.require('stream');
  const stream = new Readable({ read() {} });
  if (data !== null && data !== undefined && data.length > 0) stream.push(data);
  stream.push(null);
  return stream;
}

export function spawn(file, args, options) {
  ({ file, args, options } = parseArgs(file, args, options));
  const child = new ChildProcess();
  child.spawnfile = file;
  child.spawnargs = [file, ...args];
  setImmediate(() => {
    const result = runChild(file, args, { ...options, encoding: 'buffer' });
    if (result.error) {
      child.emit('error', result.error);
      return;
    }
    child.pid = result.pid;
    child.exitCode = result.status;
    child.emit('spawn');
    const stdio = normalizeStdio(options.stdio);
    child.stdout = stdio[1] === 'pipe' ? readableOf(result.stdout) : null;
    child.stderr = stdio[2] === 'pipe' ? readableOf(result.stderr) : null;
    child.stdio = [null, child.stdout, child.stderr];
    if (child.stdout && options.encoding) child.stdout.setEncoding(options.encoding);
    let pending = [child.stdout, child.stderr].filter(Boolean).length;
    const closed = () => {
      if (--pending <= 0) {
        child.emit('exit', result.status, result.signal);
        child.emit('close', result.status, result.signal);
      }
    };
    child.emit('_streams');
    for (const stream of [child.stdout, child.stderr]) if (stream) stream.on('end', closed).on('error', closed);
    if (pending === 0) closed();
  });
  // The streams exist once the child ran; listeners added before that are moved onto them.
  for (const name of ['stdout', 'stderr']) {
    const early = new EventEmitter();
    early.setEncoding = (encoding) => { early._encoding = encoding; return early; };
    early.pipe = (destination) => { early._pipe = destination; return destination; };
    child[name] = early;
    child.once('_streams', () => {
      const stream = child[name];
      if (!stream) return;
      if (early._encoding) stream.setEncoding(early._encoding);
      for (const event of early.eventNames()) for (const listener of early.listeners(event)) stream.on(event, listener);
      if (early._pipe) stream.pipe(early._pipe);
    });
  }
  return child;
}

export function execFile(file, args, options, callback) {
  if (typeof args === 'function') [callback, args, options] = [args, [], {}];
  else if (typeof options === 'function') [callback, options] = [options, Array.isArray(args) ? {} : args];
  if (!Array.isArray(args)) args = [];
  options = options || {};
  const child = new ChildProcess();
  setImmediate(() => {
    const result = runChild(options.shell ? shellFor(options.shell) : file, options.shell ? ['-c', [file, ...args].join(' ')] : args,
      { ...options, encoding: options.encoding ?? 'utf8' });
    child.pid = result.pid;
    child.exitCode = result.status;
    let error = result.error || null;
    if (!error && result.status !== 0) {
      error = new Error(`Command failed: ${[file, ...args].join(' ')}\n${result.stderr ?? ''}`);
      error.code = result.status;
      error.killed = false;
      error.signal = result.signal;
      error.cmd = [file, ...args].join(' ');
    }
    if (callback) callback(error, result.stdout ?? '', result.stderr ?? '');
    child.emit('exit', result.status, result.signal);
    child.emit('close', result.status, result.signal);
  });
  return child;
}

export function exec(command, options, callback) {
  if (typeof options === 'function') [callback, options] = [options, {}];
  return execFile(String(command), [], { ...(options || {}), shell: options?.shell || true }, callback);
}

export function fork() {
  throw coded(Error, 'ERR_UNSUPPORTED', 'child_process.fork is not supported by this runtime (secure-exec)');
}

export default { spawn, spawnSync, exec, execSync, execFile, execFileSync, fork, ChildProcess };
