// `fs`: the synchronous calls on the runner's native file calls (so on the kernel's VFS, its
// mounts and its permission policy); the callback and promise forms run the same calls and
// answer on a later turn of the event loop, as Node's do. Streams build on `stream`.
import { Buffer } from 'buffer';
import { native } from './internal/native.js';
import { check, coded, invalidArgType, systemError } from './internal/errors.js';
import { decodeUtf8 } from './internal/encoding.js';

export const constants = {
  O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, O_CREAT: 0o100, O_EXCL: 0o200, O_NOCTTY: 0o400, O_TRUNC: 0o1000,
  O_APPEND: 0o2000, O_DIRECTORY: 0o200000, O_NOFOLLOW: 0o400000, O_SYNC: 0o4010000, O_DSYNC: 0o10000,
  O_NONBLOCK: 0o4000,
  S_IFMT: 0o170000, S_IFREG: 0o100000, S_IFDIR: 0o40000, S_IFCHR: 0o20000, S_IFBLK: 0o60000,
  S_IFIFO: 0o10000, S_IFLNK: 0o120000, S_IFSOCK: 0o140000,
  S_IRWXU: 0o700, S_IRUSR: 0o400, S_IWUSR: 0o200, S_IXUSR: 0o100,
  S_IRWXG: 0o70, S_IRGRP: 0o40, S_IWGRP: 0o20, S_IXGRP: 0o10,
  S_IRWXO: 0o7, S_IROTH: 0o4, S_IWOTH: 0o2, S_IXOTH: 0o1,
  F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1,
  UV_FS_COPYFILE_EXCL: 1, COPYFILE_EXCL: 1, COPYFILE_FICLONE: 2, COPYFILE_FICLONE_FORCE: 4,
};
export const { F_OK, R_OK, W_OK, X_OK } = constants;

const FLAGS = {
  r: 0, rs: 0o4010000, sr: 0o4010000, 'r+': 2, 'rs+': 0o4010002, 'sr+': 0o4010002,
  w: 0o1101, wx: 0o1301, xw: 0o1301, 'w+': 0o1102, 'wx+': 0o1302, 'xw+': 0o1302,
  a: 0o2101, ax: 0o2301, xa: 0o2301, as: 0o6101, sa: 0o6101,
  'a+': 0o2102, 'ax+': 0o2302, 'xa+': 0o2302, 'as+': 0o6102, 'sa+': 0o6102,
};

/** A path argument as a string: a string, a Buffer, or a `file:` URL. */
export function toPath(path, name = 'path') {
  if (typeof path === 'string') {
    if (path.includes('\0')) throw coded(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument '${name}' must be a string without null bytes. Received ${JSON.stringify(path)}`);
    return path;
  }
  if (path instanceof Uint8Array) return decodeUtf8(path);
  if (path && typeof path === 'object' && path.protocol === 'file:' && typeof path.pathname === 'string') {
    return decodeURIComponent(path.pathname);
  }
  throw invalidArgType(name, 'of type string or an instance of Buffer or URL', path);
}

function toFlags(flags, fallback) {
  if (flags === undefined || flags === null) return FLAGS[fallback];
  if (typeof flags === 'number') return flags;
  const value = FLAGS[flags];
  if (value === undefined) throw coded(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'flags' is invalid. Received '${flags}'`);
  return value;
}

function toMode(mode, fallback) {
  if (mode === undefined || mode === null) return fallback;
  return typeof mode === 'string' ? parseInt(mode, 8) : mode;
}

function options(value, defaults) {
  if (value === undefined || value === null || typeof value === 'function') return { ...defaults };
  if (typeof value === 'string') return { ...defaults, encoding: value };
  return { ...defaults, ...value };
}

function toFd(fd) {
  if (!Number.isInteger(fd) || fd < 0) throw invalidArgType('fd', 'of type number', fd);
  return fd;
}

function toBytes(data, encoding) {
  if (typeof data === 'string') return Buffer.from(data, encoding || 'utf8');
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw invalidArgType('data', 'of type string or an instance of Buffer, TypedArray, or DataView', data);
}

function encode(buffer, encoding) {
  return encoding && encoding !== 'buffer' ? buffer.toString(encoding) : buffer;
}

export class Stats {
  constructor(fields) {
    [this.dev, this.ino, this.mode, this.nlink, this.uid, this.gid, this.rdev, this.size, this.blksize, this.blocks,
      this.atimeMs, this.mtimeMs, this.ctimeMs] = fields;
    this.birthtimeMs = this.ctimeMs;
    this.atime = new Date(this.atimeMs);
    this.mtime = new Date(this.mtimeMs);
    this.ctime = new Date(this.ctimeMs);
    this.birthtime = new Date(this.birthtimeMs);
  }
  _type() { return this.mode & constants.S_IFMT; }
  isFile() { return this._type() === constants.S_IFREG; }
  isDirectory() { return this._type() === constants.S_IFDIR; }
  isSymbolicLink() { return this._type() === constants.S_IFLNK; }
  isCharacterDevice() { return this._type() === constants.S_IFCHR; }
  isBlockDevice() { return this._type() === constants.S_IFBLK; }
  isFIFO() { return this._type() === constants.S_IFIFO; }
  isSocket() { return this._type() === constants.S_IFSOCK; }
}

// d_type values (WASI libc's).
const DT = { BLK: 1, CHR: 2, DIR: 3, REG: 4, LNK: 7, SOCK: 6, FIFO: 0 };
const DT_UNKNOWN = 0;

/** An entry's d_type from lstat (DT_UNKNOWN when that fails). */
function typeOf(path) {
  const stat = native.stat(path, false);
  if (!Array.isArray(stat)) return DT_UNKNOWN;
  switch (stat[2] & constants.S_IFMT) {
    case constants.S_IFREG: return DT.REG;
    case constants.S_IFDIR: return DT.DIR;
    case constants.S_IFLNK: return DT.LNK;
    case constants.S_IFCHR: return DT.CHR;
    case constants.S_IFBLK: return DT.BLK;
    case constants.S_IFSOCK: return DT.SOCK;
    default: return DT_UNKNOWN;
  }
}

export class Dirent {
  constructor(name, type, parentPath) {
    this.name = name;
    this.parentPath = parentPath;
    this.path = parentPath;
    this._type = type;
  }
  isFile() { return this._type === DT.REG; }
  isDirectory() { return this._type === DT.DIR; }
  isSymbolicLink() { return this._type === DT.LNK; }
  isCharacterDevice() { return this._type === DT.CHR; }
  isBlockDevice() { return this._type === DT.BLK; }
  isFIFO() { return false; }
  isSocket() { return false; }
}

export function openSync(path, flags, mode) {
  path = toPath(path);
  return check(native.open(path, toFlags(flags, 'r'), toMode(mode, 0o666)), 'open', path);
}

export function closeSync(fd) {
  check(native.close(toFd(fd)), 'close');
}

export function readSync(fd, buffer, offsetOrOptions, length, position) {
  let offset = offsetOrOptions;
  if (offsetOrOptions && typeof offsetOrOptions === 'object') ({ offset = 0, length = buffer.byteLength - offset, position = null } = offsetOrOptions);
  offset ??= 0;
  length ??= buffer.byteLength - offset;
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const at = position === null || position === undefined || position < 0 ? -1 : Number(position);
  return check(native.read(toFd(fd), bytes, offset, length, at), 'read');
}

export function writeSync(fd, data, offsetOrPosition, lengthOrEncoding, position) {
  toFd(fd);
  if (typeof data === 'string') {
    const bytes = Buffer.from(data, typeof lengthOrEncoding === 'string' ? lengthOrEncoding : 'utf8');
    const at = typeof offsetOrPosition === 'number' ? offsetOrPosition : -1;
    return check(native.write(fd, bytes, 0, bytes.length, at), 'write');
  }
  const bytes = toBytes(data);
  const offset = offsetOrPosition ?? 0;
  const length = lengthOrEncoding ?? bytes.length - offset;
  const at = position === null || position === undefined ? -1 : position;
  return check(native.write(fd, bytes, offset, length, at), 'write');
}

function readAll(fd, path) {
  const stat = native.fstat(fd);
  const size = Array.isArray(stat) && (stat[2] & constants.S_IFMT) === constants.S_IFREG ? stat[7] : 0;
  if (Array.isArray(stat) && (stat[2] & constants.S_IFMT) === constants.S_IFDIR) throw systemError(-31, 'read');
  const chunks = [];
  let total = 0;
  let chunkSize = size > 0 ? size + 1 : 65536;
  for (;;) {
    const chunk = Buffer.allocUnsafe(chunkSize);
    const n = native.read(fd, chunk, 0, chunk.length, -1);
    if (n < 0) check(n, 'read', path);
    if (n === 0) break;
    chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    total += n;
    chunkSize = 65536;
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
}

export function readFileSync(path, opts) {
  const { encoding, flag } = options(opts, { flag: 'r' });
  if (typeof path === 'number' && Number.isInteger(path) && path >= 0) return encode(readAll(path), encoding);
  path = toPath(path);
  const fd = check(native.open(path, toFlags(flag, 'r'), 0o666), 'open', path);
  try {
    return encode(readAll(fd, path), encoding);
  } finally {
    native.close(fd);
  }
}

function writeAllTo(fd, bytes, path) {
  let done = 0;
  while (done < bytes.length) done += check(native.write(fd, bytes, done, bytes.length - done, -1), 'write', path);
}

export function writeFileSync(path, data, opts) {
  const { encoding, flag, mode } = options(opts, { encoding: 'utf8', flag: 'w', mode: 0o666 });
  const bytes = toBytes(data, encoding);
  if (typeof path === 'number') return writeAllTo(path, bytes);
  path = toPath(path);
  const fd = check(native.open(path, toFlags(flag, 'w'), toMode(mode, 0o666)), 'open', path);
  try {
    writeAllTo(fd, bytes, path);
  } finally {
    native.close(fd);
  }
}

export function appendFileSync(path, data, opts) {
  const given = options(opts, { encoding: 'utf8', flag: 'a', mode: 0o666 });
  writeFileSync(path, data, given);
}

export function existsSync(path) {
  try {
    return Array.isArray(native.stat(toPath(path), true));
  } catch {
    return false;
  }
}

function statFor(result, syscall, path, opts) {
  if (typeof result === 'number' && result < 0) {
    if (opts && opts.throwIfNoEntry === false && result === -44) return undefined;
    throw systemError(result, syscall, path);
  }
  const stats = new Stats(result);
  if (opts && opts.bigint) {
    for (const key of ['dev', 'ino', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'size', 'blksize', 'blocks']) stats[key] = BigInt(stats[key]);
  }
  return stats;
}

export function statSync(path, opts) {
  path = toPath(path);
  return statFor(native.stat(path, true), 'stat', path, opts);
}

export function lstatSync(path, opts) {
  path = toPath(path);
  return statFor(native.stat(path, false), 'lstat', path, opts);
}

export function fstatSync(fd, opts) {
  return statFor(native.fstat(toFd(fd)), 'fstat', undefined, opts);
}

export function readdirSync(path, opts) {
  const { withFileTypes, recursive, encoding } = options(opts, {});
  path = toPath(path);
  const entries = [];
  const walk = (dir, prefix) => {
    const listing = check(native.readdir(dir), 'scandir', dir);
    const here = [];
    for (let i = 0; i < listing.length; i += 2) {
      // A file system that does not say an entry's type (DT_UNKNOWN, as host directories do):
      // lstat tells, as libuv does.
      here.push([listing[i], listing[i + 1] === DT_UNKNOWN ? typeOf(`${dir}/${listing[i]}`) : listing[i + 1]]);
    }
    here.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [name, type] of here) {
      const relative = prefix ? `${prefix}/${name}` : name;
      entries.push(withFileTypes ? new Dirent(name, type, dir) : relative);
      if (recursive && type === DT.DIR) walk(`${dir}/${name}`, relative);
    }
  };
  walk(path, '');
  return encoding === 'buffer' && !withFileTypes ? entries.map((name) => Buffer.from(name)) : entries;
}

export function mkdirSync(path, opts) {
  const { recursive, mode } = typeof opts === 'number' || typeof opts === 'string' ? { mode: opts } : options(opts, {});
  path = toPath(path);
  const bits = toMode(mode, 0o777);
  if (!recursive) {
    check(native.mkdir(path, bits), 'mkdir', path);
    return undefined;
  }
  const absolute = path.startsWith('/') ? path : `${process.cwd()}/${path}`;
  const parts = absolute.split('/').filter(Boolean);
  let current = '';
  let first;
  for (const part of parts) {
    current += `/${part}`;
    const result = native.mkdir(current, bits);
    if (result === 0) first ??= current;
    else if (result === -20) { // EEXIST
      const stat = native.stat(current, true);
      if (!Array.isArray(stat) || (stat[2] & constants.S_IFMT) !== constants.S_IFDIR) throw systemError(-20, 'mkdir', path);
    } else check(result, 'mkdir', path);
  }
  return first;
}

export function mkdtempSync(prefix) {
  prefix = toPath(prefix, 'prefix');
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  for (let attempt = 0; attempt < 100; attempt++) {
    const random = new Uint8Array(6);
    native.random(random);
    const path = prefix + Array.from(random, (byte) => alphabet[byte % alphabet.length]).join('');
    const result = native.mkdir(path, 0o700);
    if (result === 0) return path;
    if (result !== -20) check(result, 'mkdtemp', `${prefix}XXXXXX`);
  }
  throw systemError(-20, 'mkdtemp', `${prefix}XXXXXX`);
}

export function rmdirSync(path, opts) {
  path = toPath(path);
  if (opts && opts.recursive) return rmSync(path, { recursive: true });
  check(native.rmdir(path), 'rmdir', path);
}

export function rmSync(path, opts) {
  const { recursive, force } = options(opts, {});
  path = toPath(path);
  const stat = native.stat(path, false);
  if (typeof stat === 'number') {
    if (force && stat === -44) return;
    throw systemError(stat, 'rm', path);
  }
  if ((stat[2] & constants.S_IFMT) === constants.S_IFDIR) {
    if (!recursive) {
      const error = coded(Error, 'ERR_FS_EISDIR', `Path is a directory: rm returned EISDIR (is a directory) ${path}`);
      error.errno = 21;
      error.syscall = 'rm';
      error.path = path;
      throw error;
    }
    const listing = check(native.readdir(path), 'scandir', path);
    for (let i = 0; i < listing.length; i += 2) rmSync(`${path}/${listing[i]}`, { recursive, force });
    check(native.rmdir(path), 'rmdir', path);
  } else check(native.unlink(path), 'unlink', path);
}

export function unlinkSync(path) {
  path = toPath(path);
  check(native.unlink(path), 'unlink', path);
}

export function renameSync(from, to) {
  from = toPath(from, 'oldPath');
  to = toPath(to, 'newPath');
  check(native.rename(from, to), 'rename', from, to);
}

export function copyFileSync(from, to, mode = 0) {
  from = toPath(from, 'src');
  to = toPath(to, 'dest');
  const data = readFileSync(from);
  if (mode & constants.COPYFILE_EXCL) {
    const fd = check(native.open(to, FLAGS.wx, 0o666), 'copyfile', from, to);
    try { writeAllTo(fd, data, to); } finally { native.close(fd); }
  } else writeFileSync(to, data);
}

export function cpSync(from, to, opts = {}) {
  from = toPath(from, 'src');
  to = toPath(to, 'dest');
  const stat = lstatSync(from);
  if (stat.isDirectory()) {
    if (!opts.recursive) {
      throw coded(Error, 'ERR_FS_EISDIR', `Recursive option is required to copy a directory: ${from}`);
    }
    mkdirSync(to, { recursive: true });
    for (const name of readdirSync(from)) cpSync(`${from}/${name}`, `${to}/${name}`, opts);
  } else if (stat.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
  else {
    if (opts.errorOnExist && opts.force === false && existsSync(to)) throw systemError(-20, 'cp', to);
    if (opts.force === false && existsSync(to)) return;
    copyFileSync(from, to);
  }
}

export function symlinkSync(target, path) {
  target = toPath(target, 'target');
  path = toPath(path);
  check(native.symlink(target, path), 'symlink', target, path);
}

export function linkSync(existing, path) {
  existing = toPath(existing, 'existingPath');
  path = toPath(path, 'newPath');
  check(native.link(existing, path), 'link', existing, path);
}

export function readlinkSync(path, opts) {
  path = toPath(path);
  const target = check(native.readlink(path), 'readlink', path);
  return options(opts, {}).encoding === 'buffer' ? Buffer.from(target) : target;
}

// Links followed before ELOOP (Linux's bound).
const MAX_LINK_HOPS = 40;

/** The canonical path: every link followed, `.` and `..` applied, as realpath(3). */
function canonical(path) {
  const start = path.startsWith('/') ? path : `${check(native.getcwd(), 'realpath')}/${path}`;
  let pending = start.split('/').filter(Boolean);
  const done = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift();
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const current = `/${[...done, part].join('/')}`;
    const stat = check(native.stat(current, false), 'realpath', path);
    if ((stat[2] & constants.S_IFMT) === constants.S_IFLNK) {
      if (++hops > MAX_LINK_HOPS) throw systemError(-32, 'realpath', path);
      const target = check(native.readlink(current), 'realpath', path);
      if (target.startsWith('/')) done.length = 0;
      pending = [...target.split('/').filter(Boolean), ...pending];
    } else {
      if (pending.length > 0 && (stat[2] & constants.S_IFMT) !== constants.S_IFDIR) throw systemError(-54, 'realpath', path);
      done.push(part);
    }
  }
  return `/${done.join('/')}`;
}

export function realpathSync(path, opts) {
  path = toPath(path);
  const resolved = canonical(path);
  return options(opts, {}).encoding === 'buffer' ? Buffer.from(resolved) : resolved;
}
realpathSync.native = realpathSync;

export function ftruncateSync(fd, length = 0) {
  check(native.ftruncate(toFd(fd), length), 'ftruncate');
}

export function truncateSync(path, length = 0) {
  if (typeof path === 'number') return ftruncateSync(path, length);
  path = toPath(path);
  const fd = check(native.open(path, 1, 0o666), 'open', path);
  try { check(native.ftruncate(fd, length), 'ftruncate', path); } finally { native.close(fd); }
}

export function fsyncSync(fd) {
  check(native.fsync(toFd(fd)), 'fsync');
}
export const fdatasyncSync = fsyncSync;

function timeMs(time) {
  if (time instanceof Date) return time.getTime();
  if (typeof time === 'string') return Number(time) * 1000;
  return Number(time) * 1000;
}

export function utimesSync(path, atime, mtime) {
  path = toPath(path);
  check(native.utimes(path, timeMs(atime), timeMs(mtime)), 'utime', path);
}
export const lutimesSync = utimesSync;
export function futimesSync() {}

export function accessSync(path, mode = F_OK) {
  path = toPath(path);
  check(native.access(path, mode), 'access', path);
}

// WASI has no permission bits to change: the mode calls check that the file exists and
// otherwise do nothing (the VM's permission policy, not modes, decides access).
export function chmodSync(path) {
  statSync(path);
}
export const lchmodSync = chmodSync;
export function fchmodSync(fd) {
  fstatSync(fd);
}
export function chownSync(path) {
  statSync(path);
}
export const lchownSync = chownSync;
export function fchownSync(fd) {
  fstatSync(fd);
}

export function opendirSync(path) {
  const entries = readdirSync(path, { withFileTypes: true });
  let index = 0;
  return {
    path: toPath(path),
    readSync: () => entries[index++] ?? null,
    read: async () => entries[index++] ?? null,
    closeSync() {},
    close: async () => {},
    async *[Symbol.asyncIterator]() {
      while (index < entries.length) yield entries[index++];
    },
  };
}

export function watch() {
  throw coded(Error, 'ERR_UNSUPPORTED', 'fs.watch is not supported by this runtime (secure-exec)');
}
export const watchFile = watch;
export function unwatchFile() {}

// The callback forms: the same call, answered on a later turn.
const SYNC_NAMES = [
  'open', 'close', 'read', 'write', 'readFile', 'writeFile', 'appendFile', 'stat', 'lstat', 'fstat', 'readdir',
  'mkdir', 'mkdtemp', 'rmdir', 'rm', 'unlink', 'rename', 'copyFile', 'cp', 'symlink', 'link', 'readlink',
  'realpath', 'ftruncate', 'truncate', 'fsync', 'fdatasync', 'utimes', 'lutimes', 'futimes', 'access', 'chmod',
  'lchmod', 'fchmod', 'chown', 'lchown', 'fchown', 'opendir',
];

const syncs = {
  openSync, closeSync, readSync, writeSync, readFileSync, writeFileSync, appendFileSync, statSync, lstatSync,
  fstatSync, readdirSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, unlinkSync, renameSync, copyFileSync, cpSync,
  symlinkSync, linkSync, readlinkSync, realpathSync, ftruncateSync, truncateSync, fsyncSync, fdatasyncSync,
  utimesSync, lutimesSync, futimesSync, accessSync, chmodSync, lchmodSync, fchmodSync, chownSync, lchownSync,
  fchownSync, opendirSync,
};

function callbackForm(sync, name) {
  return function (...args) {
    const callback = args.pop();
    if (typeof callback !== 'function') throw invalidArgType('cb', 'of type function', callback);
    let result;
    let error = null;
    try {
      result = sync(...args);
    } catch (caught) {
      error = caught;
    }
    if (name === 'read' || name === 'write') {
      const buffer = args[1];
      setImmediate(() => (error ? callback(error) : callback(null, result, buffer)));
    } else setImmediate(() => callback(error, result));
  };
}

export const callbacks = {};
for (const name of SYNC_NAMES) callbacks[name] = callbackForm(syncs[`${name}Sync`], name);
callbacks.exists = (path, callback) => setImmediate(() => callback(existsSync(path)));
// What util.promisify makes of them (Node's own): exists resolves to the boolean; read and write
// to { bytesRead | bytesWritten, buffer }.
Object.defineProperty(callbacks.exists, Symbol.for('nodejs.util.promisify.custom'), {
  value: (path) => new Promise((resolve) => callbacks.exists(path, resolve)),
});
callbacks.read[Symbol.for('secure-exec.promisify.args')] = ['bytesRead', 'buffer'];
callbacks.write[Symbol.for('secure-exec.promisify.args')] = ['bytesWritten', 'buffer'];
callbacks.realpath.native = callbacks.realpath;

export { syncs };
