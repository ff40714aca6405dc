// `net`: TCP servers and connections on the VM's network, through the kernel's sockets
// (`host_net`): a server listens inside the VM (reachable from the VM's other processes and
// from the host with VmFetch); a connection out goes where the VM's network policy allows.
import EventEmitter from 'events';
import { Buffer } from 'buffer';
import { native } from './internal/native.js';
import { systemError, coded } from './internal/errors.js';
import { registry } from './internal/registry.js';
import * as io from './internal/io.js';

// Bytes one receive asks for.
const RECEIVE_BYTES = 65536;

function splitAddress(text) {
  const colon = text.lastIndexOf(':');
  let host = text.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { address: host, port: Number(text.slice(colon + 1)), family: host.includes(':') ? 'IPv6' : 'IPv4' };
}

function joinAddress(host, port) {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** An IP address for `host`: itself when it is one, else the kernel's resolver's first answer. */
export function resolveHost(host) {
  if (host === 'localhost') return '127.0.0.1';
  if (isIP(host)) return host;
  const answer = native.netResolve(host, '0', 0);
  if (typeof answer === 'number') {
    const error = systemError(answer, 'getaddrinfo', host);
    error.code = 'ENOTFOUND';
    error.message = `getaddrinfo ENOTFOUND ${host}`;
    throw error;
  }
  const [first] = JSON.parse(answer); // [{"addr": "...", "family": 4}, ...]
  if (!first || typeof first.addr !== 'string') throw coded(Error, 'ENOTFOUND', `getaddrinfo ENOTFOUND ${host}`);
  return first.addr;
}

let streamModule;
function stream() {
  streamModule ??= registry.require('stream');
  return streamModule;
}

export function createSocketClass() {
  const { Duplex } = stream();
  class Socket extends Duplex {
    constructor(options = {}) {
      super({ allowHalfOpen: Boolean(options.allowHalfOpen), emitClose: true });
      this._fd = options.fd ?? -1;
      this.connecting = false;
      this.bytesRead = 0;
      this.bytesWritten = 0;
      this._refed = true;
      if (options._peer) Object.assign(this, peerFields(options._peer));
    }
    get remoteAddress() { return this._remote?.address; }
    get remotePort() { return this._remote?.port; }
    get remoteFamily() { return this._remote?.family; }
    get localAddress() { return this._local()?.address; }
    get localPort() { return this._local()?.port; }
    _local() {
      if (this._fd < 0) return undefined;
      const name = native.netSockname(this._fd);
      return typeof name === 'string' ? splitAddress(name) : undefined;
    }
    address() {
      return this._local() ?? {};
    }
    connect(...args) {
      const options = typeof args[0] === 'object' ? args[0] : { port: args[0], host: typeof args[1] === 'string' ? args[1] : 'localhost' };
      const callback = args.find((arg) => typeof arg === 'function');
      if (callback) this.once('connect', callback);
      this.connecting = true;
      setImmediate(() => {
        try {
          const fd = native.netSocket(false);
          if (fd < 0) throw systemError(fd, 'socket');
          const host = resolveHost(options.host ?? 'localhost');
          const result = native.netConnect(fd, joinAddress(host, Number(options.port)));
          if (result < 0) {
            native.netClose(fd);
            const error = systemError(result, 'connect');
            error.address = host;
            error.port = Number(options.port);
            error.message = `connect ${error.code} ${host}:${options.port}`;
            throw error;
          }
          this._fd = fd;
          this._remote = { address: host, port: Number(options.port), family: host.includes(':') ? 'IPv6' : 'IPv4' };
          if (options.tls) {
            // TLS is the driver's (rustls, the Mozilla roots and --tls-ca-file): verified for
            // the server name, and the program reads and writes plaintext.
            const servername = options.servername ?? options.host ?? host;
            const secured = native.netTls(fd, servername);
            if (secured < 0) {
              const error = systemError(secured, 'connect');
              error.message = `TLS with ${servername}:${options.port} failed (${error.code}): the certificate did not verify or the handshake failed`;
              throw error;
            }
            this.encrypted = true;
            this.authorized = true;
          }
          this.connecting = false;
          this.emit('connect');
          if (options.tls) this.emit('secureConnect');
          this.emit('ready');
          if (this._wantsData) this._read();
        } catch (error) {
          this.connecting = false;
          this.destroy(error);
        }
      });
      return this;
    }
    _read() {
      if (this._fd < 0) {
        this._wantsData = true;
        return;
      }
      io.watch(this._fd, io.POLLIN, () => {
        const chunk = Buffer.allocUnsafe(RECEIVE_BYTES);
        const n = native.netRecv(this._fd, chunk, 0, chunk.length);
        io.unwatch(this._fd);
        if (n < 0) return this.destroy(systemError(n, 'read'));
        if (n === 0) return this.push(null);
        this.bytesRead += n;
        this.push(chunk.subarray(0, n));
      });
      io.setRef(this._fd, this._refed);
    }
    _write(chunk, encoding, callback) {
      const send = () => {
        let done = 0;
        while (done < chunk.length) {
          const n = native.netSend(this._fd, chunk, done, chunk.length - done);
          if (n < 0) return callback(systemError(n, 'write'));
          done += n;
        }
        this.bytesWritten += done;
        callback();
      };
      if (this.connecting) this.once('connect', send);
      else send();
    }
    _final(callback) {
      callback();
      // Without half-open sockets, the end of our side ends the connection once the peer's
      // data has been read.
      if (!this.allowHalfOpen) setImmediate(() => this.destroy());
    }
    _destroy(error, callback) {
      if (this._fd >= 0) {
        io.unwatch(this._fd);
        native.netClose(this._fd);
        this._fd = -1;
      }
      callback(error);
    }
    setEncoding(encoding) { return super.setEncoding(encoding); }
    setNoDelay() { return this; }
    setKeepAlive() { return this; }
    setTimeout(ms, callback) {
      if (callback) this.once('timeout', callback);
      return this;
    }
    ref() { this._refed = true; if (this._fd >= 0) io.setRef(this._fd, true); return this; }
    unref() { this._refed = false; if (this._fd >= 0) io.setRef(this._fd, false); return this; }
  }
  return Socket;
}

function peerFields(peer) {
  return { _remote: splitAddress(peer) };
}

let SocketClass;
export function Socket(options) {
  SocketClass ??= createSocketClass();
  return new SocketClass(options);
}

export class Server extends EventEmitter {
  constructor(options, listener) {
    super();
    if (typeof options === 'function') [listener, options] = [options, {}];
    if (listener) this.on('connection', listener);
    this._fd = -1;
    this._refed = true;
    this.listening = false;
    this.maxConnections = undefined;
  }
  listen(...args) {
    let options = {};
    if (typeof args[0] === 'object' && args[0] !== null) options = args[0];
    else {
      options.port = args[0];
      if (typeof args[1] === 'string') options.host = args[1];
      if (typeof args[1] === 'number') options.backlog = args[1];
      if (typeof args[2] === 'number') options.backlog = args[2];
    }
    const callback = args.find((arg) => typeof arg === 'function');
    if (callback) this.once('listening', callback);
    const fd = native.netSocket(false);
    const fail = (result, syscall) => {
      const error = systemError(result, syscall);
      error.message = `${syscall} ${error.code} ${options.host ?? '0.0.0.0'}:${options.port ?? 0}`;
      setImmediate(() => this.emit('error', error));
      return this;
    };
    if (fd < 0) return fail(fd, 'socket');
    const host = options.host ? resolveHost(options.host) : '0.0.0.0';
    const bound = native.netBind(fd, joinAddress(host, Number(options.port ?? 0)));
    if (bound < 0) {
      native.netClose(fd);
      return fail(bound, 'listen');
    }
    const listening = native.netListen(fd, options.backlog ?? 511);
    if (listening < 0) {
      native.netClose(fd);
      return fail(listening, 'listen');
    }
    this._fd = fd;
    this.listening = true;
    io.watch(fd, io.POLLIN, () => this._accept());
    io.setRef(fd, this._refed);
    setImmediate(() => this.emit('listening'));
    return this;
  }
  _accept() {
    const accepted = native.netAccept(this._fd);
    if (typeof accepted === 'number') {
      if (accepted !== -6) this.emit('error', systemError(accepted, 'accept'));
      return;
    }
    const [fd, peer] = accepted;
    const socket = Socket({ fd, _peer: peer });
    this.emit('connection', socket);
  }
  address() {
    if (this._fd < 0) return null;
    const name = native.netSockname(this._fd);
    return typeof name === 'string' ? splitAddress(name) : null;
  }
  close(callback) {
    if (this._fd >= 0) {
      io.unwatch(this._fd);
      native.netClose(this._fd);
      this._fd = -1;
      this.listening = false;
      setImmediate(() => this.emit('close'));
      if (callback) this.once('close', callback);
    } else if (callback) {
      setImmediate(() => callback(coded(Error, 'ERR_SERVER_NOT_RUNNING', 'Server is not running.')));
    }
    return this;
  }
  ref() { this._refed = true; if (this._fd >= 0) io.setRef(this._fd, true); return this; }
  unref() { this._refed = false; if (this._fd >= 0) io.setRef(this._fd, false); return this; }
  getConnections(callback) { setImmediate(() => callback(null, 0)); }
}

export function createServer(options, listener) {
  return new Server(options, listener);
}

export function connect(...args) {
  return Socket().connect(...args);
}
export const createConnection = connect;

export function isIP(input) {
  if (/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(input)) return 4;
  if (/^[0-9a-fA-F:]+$/.test(input) && input.includes(':')) return 6;
  return 0;
}
export const isIPv4 = (input) => isIP(input) === 4;
export const isIPv6 = (input) => isIP(input) === 6;

/** `tls.connect`: a connection out with TLS (client side only: a VM cannot serve TLS yet). */
export function tlsConnect(...args) {
  const options = typeof args[0] === 'object' ? { ...args[0] } : { port: args[0], host: typeof args[1] === 'string' ? args[1] : 'localhost', ...(typeof args[2] === 'object' ? args[2] : {}) };
  const callback = args.find((arg) => typeof arg === 'function');
  const socket = Socket();
  if (callback) socket.once('secureConnect', callback);
  return socket.connect({ ...options, tls: true });
}

export default {
  Server, Socket, createServer, connect, createConnection, isIP, isIPv4, isIPv6,
};
