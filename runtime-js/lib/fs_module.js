// The `fs` module object and `fs/promises`.
import { Buffer } from 'buffer';
import * as fs from './fs.js';
import { registry } from './internal/registry.js';
import process from './process.js';

function promiseForm(sync) {
  return (...args) => new Promise((resolve, reject) => {
    setImmediate(() => {
      try {
        resolve(sync(...args));
      } catch (error) {
        reject(error);
      }
    });
  });
}

class FileHandle {
  constructor(fd) {
    this.fd = fd;
  }
  read(buffer, offset, length, position) {
    buffer ??= Buffer.alloc(16384);
    return promiseForm(() => ({ bytesRead: fs.readSync(this.fd, buffer, offset, length, position), buffer }))();
  }
  write(data, ...rest) {
    return promiseForm(() => ({ bytesWritten: fs.writeSync(this.fd, data, ...rest), buffer: data }))();
  }
  readFile(options) {
    return promiseForm(() => fs.readFileSync(this.fd, options))();
  }
  writeFile(data, options) {
    return promiseForm(() => fs.writeFileSync(this.fd, data, options))();
  }
  appendFile(data, options) {
    return this.writeFile(data, options);
  }
  stat(options) {
    return promiseForm(() => fs.fstatSync(this.fd, options))();
  }
  truncate(length) {
    return promiseForm(() => fs.ftruncateSync(this.fd, length))();
  }
  sync() {
    return promiseForm(() => fs.fsyncSync(this.fd))();
  }
  datasync() {
    return this.sync();
  }
  close() {
    return promiseForm(() => {
      if (this.fd >= 0) fs.closeSync(this.fd);
      this.fd = -1;
    })();
  }
  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

export const promises = {};
for (const [name, sync] of Object.entries(fs.syncs)) {
  if (name === 'openSync' || name === 'closeSync' || name === 'readSync' || name === 'writeSync') continue;
  promises[name.slice(0, -4)] = promiseForm(sync);
}
promises.open = promiseForm((path, flags, mode) => new FileHandle(fs.openSync(path, flags, mode)));
promises.constants = fs.constants;
promises.FileHandle = FileHandle;

/** A file stream's start: its file opened unless it was given a descriptor, then 'open' and
 * 'ready'. */
function openStreamFd(stream, mode, callback) {
  try {
    if (stream.fd === null) stream.fd = fs.openSync(stream.path, stream.flags, mode);
    stream.pending = false;
    callback();
    stream.emit('open', stream.fd);
    stream.emit('ready');
  } catch (error) {
    callback(error);
  }
}

/** A file stream's end: its descriptor closed when it opened it (the stream then emits 'close'
 * itself, emitClose). */
function closeStreamFd(stream, error, callback) {
  if (stream.autoClose && typeof stream.fd === 'number') {
    try { fs.closeSync(stream.fd); } catch {}
    stream.fd = null;
  }
  callback(error);
}

let streams;
function streamClasses() {
  if (streams) return streams;
  const { Readable, Writable } = registry.require('stream');
  class ReadStream extends Readable {
    constructor(path, options = {}) {
      if (typeof options === 'string') options = { encoding: options };
      super({ highWaterMark: options.highWaterMark ?? 65536, encoding: options.encoding });
      this.path = typeof path === 'number' ? undefined : fs.toPath(path);
      this.fd = options.fd ?? (typeof path === 'number' ? path : null);
      this.flags = options.flags ?? 'r';
      this.start = options.start;
      this.end = options.end ?? Infinity;
      this.pos = this.start;
      this.bytesRead = 0;
      this.autoClose = options.autoClose ?? true;
      this.pending = true;
    }
    _construct(callback) {
      openStreamFd(this, 0o666, callback);
    }
    _read(size) {
      const want = Math.min(size, this.end === Infinity ? size : this.end - (this.pos ?? this.bytesRead) + 1);
      if (want <= 0) return this.push(null);
      const buffer = Buffer.allocUnsafe(want);
      let n;
      try {
        n = fs.readSync(this.fd, buffer, 0, want, this.pos ?? null);
      } catch (error) {
        return this.destroy(error);
      }
      if (this.pos !== undefined) this.pos += n;
      this.bytesRead += n;
      this.push(n > 0 ? buffer.subarray(0, n) : null);
    }
    _destroy(error, callback) {
      closeStreamFd(this, error, callback);
    }
    close(callback) {
      this.destroy();
      if (callback) this.once('close', callback);
    }
  }
  class WriteStream extends Writable {
    constructor(path, options = {}) {
      if (typeof options === 'string') options = { encoding: options };
      super({ highWaterMark: options.highWaterMark ?? 16384, decodeStrings: true, defaultEncoding: options.encoding ?? 'utf8' });
      this.path = typeof path === 'number' ? undefined : fs.toPath(path);
      this.fd = options.fd ?? (typeof path === 'number' ? path : null);
      this.flags = options.flags ?? 'w';
      this.mode = options.mode ?? 0o666;
      this.pos = options.start;
      this.bytesWritten = 0;
      this.autoClose = options.autoClose ?? true;
      this.pending = true;
    }
    _construct(callback) {
      openStreamFd(this, this.mode, callback);
    }
    _write(chunk, encoding, callback) {
      try {
        let done = 0;
        while (done < chunk.length) {
          const n = fs.writeSync(this.fd, chunk, done, chunk.length - done, this.pos ?? null);
          done += n;
          if (this.pos !== undefined) this.pos += n;
        }
        this.bytesWritten += done;
        callback();
      } catch (error) {
        callback(error);
      }
    }
    _destroy(error, callback) {
      closeStreamFd(this, error, callback);
    }
    close(callback) {
      if (callback) {
        if (this.closed) {
          process.nextTick(callback);
          return;
        }
        this.once('close', callback);
      }
      if (!this.autoClose) this.on('finish', () => this.destroy());
      this.end();
    }
  }
  streams = { ReadStream, WriteStream };
  return streams;
}

const fsModule = {
  ...fs.syncs,
  ...fs.callbacks,
  existsSync: fs.existsSync,
  constants: fs.constants,
  F_OK: fs.F_OK, R_OK: fs.R_OK, W_OK: fs.W_OK, X_OK: fs.X_OK,
  Stats: fs.Stats,
  Dirent: fs.Dirent,
  watch: fs.watch,
  watchFile: fs.watchFile,
  unwatchFile: fs.unwatchFile,
  promises,
  createReadStream: (path, options) => new (streamClasses().ReadStream)(path, options),
  createWriteStream: (path, options) => new (streamClasses().WriteStream)(path, options),
};
Object.defineProperty(fsModule, 'ReadStream', { get: () => streamClasses().ReadStream, enumerable: false });
Object.defineProperty(fsModule, 'WriteStream', { get: () => streamClasses().WriteStream, enumerable: false });

export default fsModule;
