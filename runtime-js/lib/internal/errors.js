// Errors as Node raises them: system errors carry `code`, `errno` (negative, Linux's numbering),
// `syscall` and `path`, with Node's message text; a builtin we do not provide throws
// ERR_UNSUPPORTED naming it.

// WASI's errno numbering (what the runner's native calls return, negated), in order.
const WASI_ERRNO_NAMES = [
  'SUCCESS', 'E2BIG', 'EACCES', 'EADDRINUSE', 'EADDRNOTAVAIL', 'EAFNOSUPPORT', 'EAGAIN', 'EALREADY',
  'EBADF', 'EBADMSG', 'EBUSY', 'ECANCELED', 'ECHILD', 'ECONNABORTED', 'ECONNREFUSED', 'ECONNRESET',
  'EDEADLK', 'EDESTADDRREQ', 'EDOM', 'EDQUOT', 'EEXIST', 'EFAULT', 'EFBIG', 'EHOSTUNREACH', 'EIDRM',
  'EILSEQ', 'EINPROGRESS', 'EINTR', 'EINVAL', 'EIO', 'EISCONN', 'EISDIR', 'ELOOP', 'EMFILE', 'EMLINK',
  'EMSGSIZE', 'EMULTIHOP', 'ENAMETOOLONG', 'ENETDOWN', 'ENETRESET', 'ENETUNREACH', 'ENFILE', 'ENOBUFS',
  'ENODEV', 'ENOENT', 'ENOEXEC', 'ENOLCK', 'ENOLINK', 'ENOMEM', 'ENOMSG', 'ENOPROTOOPT', 'ENOSPC',
  'ENOSYS', 'ENOTCONN', 'ENOTDIR', 'ENOTEMPTY', 'ENOTRECOVERABLE', 'ENOTSOCK', 'ENOTSUP', 'ENOTTY',
  'ENXIO', 'EOVERFLOW', 'EOWNERDEAD', 'EPERM', 'EPIPE', 'EPROTO', 'EPROTONOSUPPORT', 'EPROTOTYPE',
  'ERANGE', 'EROFS', 'ESPIPE', 'ESRCH', 'ESTALE', 'ETIMEDOUT', 'ETXTBSY', 'EXDEV', 'ENOTCAPABLE',
];

// Linux's number and libuv's message for each name Node reports.
const LINUX = {
  EPERM: [1, 'operation not permitted'], ENOENT: [2, 'no such file or directory'],
  ESRCH: [3, 'no such process'], EINTR: [4, 'interrupted system call'], EIO: [5, 'i/o error'],
  ENXIO: [6, 'no such device or address'], E2BIG: [7, 'argument list too long'],
  ENOEXEC: [8, 'exec format error'], EBADF: [9, 'bad file descriptor'], ECHILD: [10, 'no child processes'],
  EAGAIN: [11, 'resource temporarily unavailable'], ENOMEM: [12, 'not enough memory'],
  EACCES: [13, 'permission denied'], EFAULT: [14, 'bad address in system call argument'],
  EBUSY: [16, 'resource busy or locked'], EEXIST: [17, 'file already exists'],
  EXDEV: [18, 'cross-device link not permitted'], ENODEV: [19, 'no such device'],
  ENOTDIR: [20, 'not a directory'], EISDIR: [21, 'illegal operation on a directory'],
  EINVAL: [22, 'invalid argument'], ENFILE: [23, 'file table overflow'], EMFILE: [24, 'too many open files'],
  ENOTTY: [25, 'inappropriate ioctl for device'], ETXTBSY: [26, 'text file is busy'],
  EFBIG: [27, 'file too large'], ENOSPC: [28, 'no space left on device'], ESPIPE: [29, 'invalid seek'],
  EROFS: [30, 'read-only file system'], EMLINK: [31, 'too many links'], EPIPE: [32, 'broken pipe'],
  ERANGE: [34, 'result too large'], ENAMETOOLONG: [36, 'name too long'], ENOSYS: [38, 'function not implemented'],
  ENOTEMPTY: [39, 'directory not empty'], ELOOP: [40, 'too many symbolic links encountered'],
  ENOTSUP: [95, 'operation not supported on socket'], EADDRINUSE: [98, 'address already in use'],
  EADDRNOTAVAIL: [99, 'address not available'], ENETUNREACH: [101, 'network is unreachable'],
  ECONNABORTED: [103, 'software caused connection abort'], ECONNRESET: [104, 'connection reset by peer'],
  ENOTCONN: [107, 'socket is not connected'], ETIMEDOUT: [110, 'connection timed out'],
  ECONNREFUSED: [111, 'connection refused'], EHOSTUNREACH: [113, 'host is unreachable'],
  EALREADY: [114, 'connection already in progress'], ECANCELED: [125, 'operation canceled'],
  ENOTCAPABLE: [13, 'permission denied'],
};

/** The errno name of a native call's negative result. */
export function errnoName(result) {
  return WASI_ERRNO_NAMES[-result] || 'EIO';
}

/** Node's SystemError for a failed call: `ENOENT: no such file or directory, open '/x'`. */
export function systemError(result, syscall, path, dest) {
  let code = errnoName(result);
  if (code === 'ENOTCAPABLE') code = 'EACCES';
  const [number, text] = LINUX[code] || [5, 'i/o error'];
  let message = `${code}: ${text}, ${syscall}`;
  if (path !== undefined) message += ` '${path}'`;
  if (dest !== undefined) message += ` -> '${dest}'`;
  const error = new Error(message);
  error.errno = -number;
  error.code = code;
  error.syscall = syscall;
  if (path !== undefined) error.path = path;
  if (dest !== undefined) error.dest = dest;
  return error;
}

/** Throws the system error when a native call failed; its result otherwise. */
export function check(result, syscall, path, dest) {
  if (typeof result === 'number' && result < 0) throw systemError(result, syscall, path, dest);
  return result;
}

export const LINUX_ERRNO = Object.fromEntries(Object.entries(LINUX).map(([name, [number]]) => [name, number]));

function codedError(Base, code, message) {
  const error = new Base(message);
  error.code = code;
  return error;
}

export function unsupported(what) {
  return codedError(Error, 'ERR_UNSUPPORTED', `${what} is not supported by this runtime (secure-exec)`);
}

export function invalidArgType(name, expected, actual) {
  const got = actual === null ? 'null' : typeof actual === 'object' ? `an instance of ${actual.constructor?.name || 'Object'}` : `type ${typeof actual} (${String(actual)})`;
  return codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. Received ${got}`);
}

export function coded(Base, code, message) {
  return codedError(Base, code, message);
}
