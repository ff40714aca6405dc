// `http`: an HTTP/1.1 server and client over `net` (so over the kernel's sockets), and the
// `fetch` global over the client. A server in a VM is reachable from the host with VmFetch.
import EventEmitter from 'events';
import { Buffer } from 'buffer';
import net from './net.js';
import { registry } from './internal/registry.js';
import { coded } from './internal/errors.js';

// The most bytes of a request or response head (request line and headers), as Node's default
// `maxHeaderSize`: past it the connection is answered 431 (server) or fails (client).
const MAX_HEAD_BYTES = 16 * 1024;

export const STATUS_CODES = {
  100: 'Continue', 101: 'Switching Protocols', 200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content',
  206: 'Partial Content', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified',
  307: 'Temporary Redirect', 308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
  404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 409: 'Conflict', 410: 'Gone',
  413: 'Payload Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Entity', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};
export const METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT'];

function stream() {
  return registry.require('stream');
}

/**
 * Reads HTTP messages off a socket: `onHead(head)` for each head (start line split, headers
 * lower-cased), then `onBody(chunk)` and `onEnd()` for its body (Content-Length, chunked, or
 * until the connection ends when `readsToEnd(head)`).
 */
class MessageReader {
  constructor(socket, { onHead, onBody, onEnd, onError, readsToEnd }) {
    Object.assign(this, { onHead, onBody, onEnd, onError, readsToEnd });
    this.buffer = Buffer.alloc(0);
    this.state = 'head';
    socket.on('data', (chunk) => this.feed(chunk));
    socket.on('end', () => {
      if (this.state === 'until-end') {
        this.state = 'done';
        this.onEnd();
      }
    });
  }
  feed(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : Buffer.from(chunk);
    for (;;) {
      if (this.state === 'head') {
        const end = this.buffer.indexOf('\r\n\r\n');
        if (end < 0) {
          if (this.buffer.length > MAX_HEAD_BYTES) return this.fail(431, 'the message head is too large');
          return;
        }
        const lines = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
        this.buffer = this.buffer.subarray(end + 4);
        const headers = {};
        const rawHeaders = [];
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          if (colon <= 0) return this.fail(400, `a malformed header line: ${JSON.stringify(line)}`);
          const name = line.slice(0, colon).trim();
          const value = line.slice(colon + 1).trim();
          rawHeaders.push(name, value);
          const key = name.toLowerCase();
          headers[key] = key in headers ? (key === 'set-cookie' ? [].concat(headers[key], value) : `${headers[key]}, ${value}`) : (key === 'set-cookie' ? [value] : value);
        }
        const head = { start: lines[0].split(' '), headers, rawHeaders };
        this.onHead(head);
        if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) this.state = 'chunk-size';
        else if (headers['content-length'] !== undefined) {
          this.remaining = Number(headers['content-length']);
          if (!Number.isSafeInteger(this.remaining) || this.remaining < 0) return this.fail(400, 'a bad Content-Length');
          this.state = 'length';
        } else if (this.readsToEnd(head)) this.state = 'until-end';
        else {
          this.state = 'head';
          this.onEnd();
          continue;
        }
      }
      if (this.state === 'length') {
        const take = Math.min(this.remaining, this.buffer.length);
        if (take > 0) this.onBody(this.buffer.subarray(0, take));
        this.buffer = this.buffer.subarray(take);
        this.remaining -= take;
        if (this.remaining > 0) return;
        this.state = 'head';
        this.onEnd();
        continue;
      }
      if (this.state === 'chunk-size') {
        const end = this.buffer.indexOf('\r\n');
        if (end < 0) return;
        const size = parseInt(this.buffer.subarray(0, end).toString('latin1'), 16);
        if (!Number.isSafeInteger(size) || size < 0) return this.fail(400, 'a bad chunk size');
        this.buffer = this.buffer.subarray(end + 2);
        if (size === 0) {
          this.state = 'trailer';
        } else {
          this.remaining = size;
          this.state = 'chunk';
        }
        continue;
      }
      if (this.state === 'chunk') {
        if (this.buffer.length < this.remaining + 2) return;
        this.onBody(this.buffer.subarray(0, this.remaining));
        this.buffer = this.buffer.subarray(this.remaining + 2);
        this.state = 'chunk-size';
        continue;
      }
      if (this.state === 'trailer') {
        const end = this.buffer.indexOf('\r\n');
        if (end < 0) return;
        this.buffer = this.buffer.subarray(end + 2);
        if (end === 0) {
          this.state = 'head';
          this.onEnd();
        }
        continue;
      }
      if (this.state === 'until-end') {
        if (this.buffer.length) this.onBody(this.buffer);
        this.buffer = Buffer.alloc(0);
      }
      return;
    }
  }
  fail(status, message) {
    this.state = 'failed';
    this.onError(status, message);
  }
}

function incomingMessage(socket, head, isRequest) {
  const { Readable } = stream();
  const message = new Readable({ read() {} });
  message.socket = socket;
  message.connection = socket;
  message.headers = head.headers;
  message.rawHeaders = head.rawHeaders;
  message.trailers = {};
  message.complete = false;
  if (isRequest) {
    [message.method, message.url] = head.start;
    message.httpVersion = (head.start[2] ?? 'HTTP/1.1').replace('HTTP/', '');
  } else {
    message.httpVersion = (head.start[0] ?? 'HTTP/1.1').replace('HTTP/', '');
    message.statusCode = Number(head.start[1]);
    message.statusMessage = head.start.slice(2).join(' ');
  }
  [message.httpVersionMajor, message.httpVersionMinor] = message.httpVersion.split('.').map(Number);
  return message;
}

/** Headers to their wire form. */
function headerLines(headers) {
  let text = '';
  for (const [name, value] of Object.entries(headers)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (/[\r\n]/.test(String(name) + String(item))) throw coded(TypeError, 'ERR_INVALID_CHAR', `Invalid character in header content ["${name}"]`);
      text += `${name}: ${item}\r\n`;
    }
  }
  return text;
}

class OutgoingHeaders extends EventEmitter {
  constructor() {
    super();
    this._headers = new Map(); // lower-case name -> [name, value]
    this.headersSent = false;
  }
  setHeader(name, value) {
    if (this.headersSent) throw coded(Error, 'ERR_HTTP_HEADERS_SENT', 'Cannot set headers after they are sent to the client');
    this._headers.set(String(name).toLowerCase(), [String(name), value]);
    return this;
  }
  getHeader(name) { return this._headers.get(String(name).toLowerCase())?.[1]; }
  hasHeader(name) { return this._headers.has(String(name).toLowerCase()); }
  removeHeader(name) { this._headers.delete(String(name).toLowerCase()); }
  getHeaders() { return Object.fromEntries([...this._headers].map(([key, [, value]]) => [key, value])); }
  getHeaderNames() { return [...this._headers.keys()]; }
  _headerObject() { return Object.fromEntries([...this._headers.values()]); }
}

export class ServerResponse extends OutgoingHeaders {
  constructor(request, socket, keepAlive) {
    super();
    this.req = request;
    this.socket = socket;
    this.connection = socket;
    this.statusCode = 200;
    this.statusMessage = undefined;
    this.finished = false;
    this.writableEnded = false;
    this._keepAlive = keepAlive;
    this._chunked = false;
    this.sendDate = true;
  }
  writeHead(status, message, headers) {
    if (typeof message === 'object') [headers, message] = [message, undefined];
    this.statusCode = status;
    if (message) this.statusMessage = message;
    if (headers) for (const [name, value] of Array.isArray(headers) ? pairs(headers) : Object.entries(headers)) this.setHeader(name, value);
    return this;
  }
  _sendHead(bodyLength) {
    if (this.headersSent) return;
    if (!this.hasHeader('content-length') && !this.hasHeader('transfer-encoding')) {
      if (bodyLength !== undefined) this.setHeader('Content-Length', bodyLength);
      else if (this.req.httpVersion === '1.1') {
        this.setHeader('Transfer-Encoding', 'chunked');
        this._chunked = true;
      } else this._keepAlive = false;
    } else this._chunked = /\bchunked\b/i.test(String(this.getHeader('transfer-encoding') ?? ''));
    if (!this.hasHeader('connection')) this.setHeader('Connection', this._keepAlive ? 'keep-alive' : 'close');
    if (this.sendDate && !this.hasHeader('date')) this.setHeader('Date', new Date().toUTCString());
    const reason = this.statusMessage ?? STATUS_CODES[this.statusCode] ?? 'unknown';
    this.socket.write(`HTTP/1.1 ${this.statusCode} ${reason}\r\n${headerLines(this._headerObject())}\r\n`, 'latin1');
    this.headersSent = true;
  }
  write(chunk, encoding, callback) {
    if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : Buffer.from(chunk);
    this._sendHead(undefined);
    if (this.req.method !== 'HEAD' && bytes.length > 0) {
      if (this._chunked) this.socket.write(`${bytes.length.toString(16)}\r\n`);
      this.socket.write(bytes);
      if (this._chunked) this.socket.write('\r\n');
    }
    if (callback) setImmediate(callback);
    return true;
  }
  end(chunk, encoding, callback) {
    if (typeof chunk === 'function') [callback, chunk] = [chunk, undefined];
    if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
    if (this.writableEnded) return this;
    const bytes = chunk === undefined || chunk === null ? Buffer.alloc(0) : typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : Buffer.from(chunk);
    if (!this.headersSent) this._sendHead(bytes.length);
    if (bytes.length > 0) this.write(bytes);
    if (this._chunked) this.socket.write('0\r\n\r\n');
    this.writableEnded = true;
    this.finished = true;
    if (!this._keepAlive) this.socket.end();
    setImmediate(() => {
      this.emit('finish');
      this.emit('close');
      if (callback) callback();
    });
    return this;
  }
  flushHeaders() { this._sendHead(undefined); }
  writeContinue() { this.socket.write('HTTP/1.1 100 Continue\r\n\r\n'); }
}

function pairs(flat) {
  const out = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i], flat[i + 1]]);
  return out;
}

export class Server extends net.Server {
  constructor(options, handler) {
    if (typeof options === 'function') [handler, options] = [options, {}];
    super();
    if (handler) this.on('request', handler);
    this.timeout = 0;
    this.keepAliveTimeout = 5000;
    this.on('connection', (socket) => this._serve(socket));
  }
  _serve(socket) {
    let current = null;
    const queue = [];
    new MessageReader(socket, {
      onHead: (head) => {
        const request = incomingMessage(socket, head, true);
        const connection = String(head.headers.connection ?? '').toLowerCase();
        const keepAlive = request.httpVersion === '1.1' ? connection !== 'close' : connection === 'keep-alive';
        const response = new ServerResponse(request, socket, keepAlive);
        current = request;
        queue.push([request, response]);
        if (queue.length === 1) this.emit('request', request, response);
        response.on('finish', () => {
          queue.shift();
          if (queue.length > 0) this.emit('request', ...queue[0]);
        });
      },
      onBody: (chunk) => current?.push(Buffer.from(chunk)),
      onEnd: () => {
        if (current) {
          current.complete = true;
          current.push(null);
        }
      },
      onError: (status) => {
        socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      },
      readsToEnd: () => false,
    });
    socket.on('error', (error) => this.emit('clientError', error, socket));
  }
  setTimeout() { return this; }
  closeAllConnections() {}
  closeIdleConnections() {}
}

export function createServer(options, handler) {
  return new Server(options, handler);
}

export class ClientRequest extends OutgoingHeaders {
  constructor(options, callback) {
    super();
    this.method = (options.method ?? 'GET').toUpperCase();
    this.host = options.hostname ?? options.host?.replace(/:\d+$/, '') ?? 'localhost';
    this.protocol = options.protocol ?? options._defaultProtocol ?? 'http:';
    this.port = Number(options.port ?? (this.protocol === 'https:' ? 443 : 80));
    this.path = options.path ?? '/';
    this.servername = options.servername ?? this.host;
    if (this.protocol !== 'http:' && this.protocol !== 'https:') {
      throw coded(TypeError, 'ERR_INVALID_PROTOCOL', `Protocol "${this.protocol}" not supported. Expected "http:" or "https:"`);
    }
    this._body = [];
    this.writableEnded = false;
    this.aborted = false;
    if (callback) this.once('response', callback);
    for (const [name, value] of Object.entries(options.headers ?? {})) this.setHeader(name, value);
    const defaultPort = this.protocol === 'https:' ? 443 : 80;
    if (!this.hasHeader('host')) this.setHeader('Host', this.port === defaultPort ? this.host : `${this.host}:${this.port}`);
  }
  write(chunk, encoding, callback) {
    if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
    this._body.push(typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : Buffer.from(chunk));
    if (callback) setImmediate(callback);
    return true;
  }
  end(chunk, encoding, callback) {
    if (typeof chunk === 'function') [callback, chunk] = [chunk, undefined];
    if (chunk !== undefined && chunk !== null) this.write(chunk, encoding);
    this.writableEnded = true;
    const body = Buffer.concat(this._body);
    if (body.length > 0 || !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(this.method)) this.setHeader('Content-Length', body.length);
    if (!this.hasHeader('connection')) this.setHeader('Connection', 'close');
    const socket = net.connect({ port: this.port, host: this.host, tls: this.protocol === 'https:', servername: this.servername });
    this.socket = socket;
    socket.on('error', (error) => this.emit('error', error));
    socket.on('connect', () => {
      this.headersSent = true;
      socket.write(`${this.method} ${this.path} HTTP/1.1\r\n${headerLines(this._headerObject())}\r\n`, 'latin1');
      if (body.length > 0) socket.write(body);
      if (callback) callback();
    });
    let response = null;
    new MessageReader(socket, {
      onHead: (head) => {
        response = incomingMessage(socket, head, false);
        this.res = response;
        this.emit('response', response);
      },
      onBody: (part) => response?.push(Buffer.from(part)),
      onEnd: () => {
        if (response) {
          response.complete = true;
          response.push(null);
          socket.end();
        }
      },
      onError: (status, message) => this.emit('error', coded(Error, 'HPE_INVALID', `Parse Error: ${message}`)),
      readsToEnd: () => this.method !== 'HEAD',
    });
    return this;
  }
  abort() { this.aborted = true; this.socket?.destroy(); }
  destroy(error) { this.socket?.destroy(); if (error) this.emit('error', error); return this; }
  setTimeout() { return this; }
  setNoDelay() {}
  setSocketKeepAlive() {}
}

function requestOptions(input, options) {
  if (typeof input === 'string' || (input && typeof input.href === 'string')) {
    const url = registry.require('url').parse(String(input.href ?? input));
    return { protocol: url.protocol, hostname: url.hostname, port: url.port || undefined, path: url.path, ...options };
  }
  return { ...input, ...options };
}

export function request(input, options, callback) {
  if (typeof options === 'function') [callback, options] = [options, {}];
  return new ClientRequest(requestOptions(input, options), callback);
}

export function get(input, options, callback) {
  const outgoing = request(input, options, callback);
  outgoing.end();
  return outgoing;
}

/** `https`: the same client over TLS (the driver's: see net.js). Serving HTTPS is not supported. */
export function httpsModule() {
  const withTls = (input, options, callback) => {
    if (typeof options === 'function') [callback, options] = [options, {}];
    return new ClientRequest({ ...requestOptions(input, options), _defaultProtocol: 'https:' }, callback);
  };
  return {
    request: withTls,
    get(input, options, callback) {
      const outgoing = withTls(input, options, callback);
      outgoing.end();
      return outgoing;
    },
    Agent,
    globalAgent,
    createServer() {
      throw coded(Error, 'ERR_UNSUPPORTED', 'https.createServer is not supported by this runtime (secure-exec): serve http inside the VM');
    },
  };
}

export const Agent = class Agent { constructor(options) { this.options = options; } };
export const globalAgent = new Agent({});

export default { STATUS_CODES, METHODS, Server, ServerResponse, ClientRequest, createServer, request, get, Agent, globalAgent, maxHeaderSize: MAX_HEAD_BYTES };

/** A `fetch` Response over what `request` received. */
class FetchResponse {
  constructor(message, body, url) {
    this.status = message.statusCode;
    this.statusText = message.statusMessage;
    this.ok = this.status >= 200 && this.status < 300;
    this.url = url;
    this.redirected = false;
    this.type = 'basic';
    const headers = message.headers;
    this.headers = {
      get: (name) => {
        const value = headers[String(name).toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
      },
      has: (name) => String(name).toLowerCase() in headers,
      forEach: (callback) => Object.entries(headers).forEach(([key, value]) => callback(value, key)),
      entries: () => Object.entries(headers)[Symbol.iterator](),
      [Symbol.iterator]: () => Object.entries(headers)[Symbol.iterator](),
    };
    this._body = body;
    this.bodyUsed = false;
  }
  _take() {
    if (this.bodyUsed) return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
    this.bodyUsed = true;
    return Promise.resolve(this._body);
  }
  text() { return this._take().then((body) => body.toString('utf8')); }
  json() { return this.text().then((text) => JSON.parse(text)); }
  arrayBuffer() { return this._take().then((body) => body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)); }
}

/** `fetch` for `http:` URLs, over the same client as `http.request`. */
export function fetch(input, init = {}) {
  return new Promise((resolve, reject) => {
    const url = String(input?.url ?? input);
    let headers = init.headers ?? {};
    if (typeof headers.forEach === 'function' && !(headers instanceof Object.getPrototypeOf(Object).constructor)) {
      const plain = {};
      headers.forEach((value, key) => { plain[key] = value; });
      headers = plain;
    }
    let outgoing;
    try {
      outgoing = request(url, { method: init.method ?? 'GET', headers });
    } catch (error) {
      reject(new TypeError(`fetch failed: ${error.message}`));
      return;
    }
    outgoing.on('error', (error) => {
      const failure = new TypeError('fetch failed');
      failure.cause = error;
      reject(failure);
    });
    outgoing.on('response', (message) => {
      const chunks = [];
      message.on('data', (chunk) => chunks.push(chunk));
      message.on('end', () => resolve(new FetchResponse(message, Buffer.concat(chunks), url)));
      message.on('error', reject);
    });
    outgoing.end(init.body === undefined || init.body === null ? undefined : init.body);
  });
}
