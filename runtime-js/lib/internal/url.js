// The WHATWG URL and URLSearchParams (globals in Node, and in `url`), and the `url` helpers on
// them: fileURLToPath, pathToFileURL, urlToHttpOptions, domainToASCII. A parser after the URL
// Standard's for what programs give it: special schemes (http, https, ws, wss, ftp, file) with
// hosts, ports, dot segments and percent-encoding; other schemes with authorities or opaque
// paths. Hosts are ASCII (no IDNA mapping beyond lower-casing).
import { coded } from './errors.js';
import { TextEncoder, TextDecoder } from './encoding.js';

const SPECIAL = { 'ftp:': 21, 'file:': null, 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };
const isSpecial = (scheme) => Object.prototype.hasOwnProperty.call(SPECIAL, scheme);

function invalidUrl(input, base) {
  const error = coded(TypeError, 'ERR_INVALID_URL', 'Invalid URL');
  error.input = input;
  if (base !== undefined) error.base = base;
  return error;
}

const C0 = (c) => c < 0x20 || c > 0x7e;
const FRAGMENT_SET = new Set([' ', '"', '<', '>', '`']);
const QUERY_SET = new Set([' ', '"', '#', '<', '>']);
const SPECIAL_QUERY_SET = new Set([...QUERY_SET, "'"]);
const PATH_SET = new Set([...QUERY_SET, '?', '`', '{', '}', '^']);
const USERINFO_SET = new Set([...PATH_SET, '/', ':', ';', '=', '@', '[', '\\', ']', '|']);
const encoder = new TextEncoder();

function percentEncode(text, set) {
  let out = '';
  for (const char of text) {
    const code = char.codePointAt(0);
    if (C0(code) || set.has(char)) {
      for (const byte of encoder.encode(char)) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    } else out += char;
  }
  return out;
}

function percentDecodeToString(text) {
  const bytes = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 37 && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else for (const byte of encoder.encode(text[i] + (c >= 0xd800 && c <= 0xdbff ? text[++i] ?? '' : ''))) bytes.push(byte);
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

function parseIPv4Number(part) {
  if (part === '') return NaN;
  let radix = 10;
  if (/^0[xX]/.test(part)) {
    part = part.slice(2);
    radix = 16;
  } else if (part.length > 1 && part[0] === '0') {
    part = part.slice(1);
    radix = 8;
  }
  if (part === '') return 0;
  const valid = radix === 16 ? /^[0-9a-fA-F]+$/ : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  return valid.test(part) ? parseInt(part, radix) : NaN;
}

function parseHost(input, special) {
  if (input.startsWith('[')) {
    if (!input.endsWith(']') || !/^[0-9a-fA-F:.]+$/.test(input.slice(1, -1))) return null;
    return input.toLowerCase();
  }
  if (!special) {
    if (/[\0\t\n\r #/:<>?@[\\\]^|]/.test(input)) return null;
    return percentEncode(input, new Set());
  }
  const domain = percentDecodeToString(input).toLowerCase();
  if (domain === '' || /[\0\t\n\r #%/:<>?@[\\\]^|\u007f]/.test(domain) || /[\u0000-\u001f]/.test(domain)) return null;
  // An IPv4 address, in any of the forms the standard accepts.
  const parts = domain.split('.');
  if (parts[parts.length - 1] === '' && parts.length > 1) parts.pop();
  const last = parts[parts.length - 1];
  if (/^[0-9]+$/.test(last) || /^0[xX][0-9a-fA-F]*$/.test(last)) {
    if (parts.length > 4) return null;
    const numbers = parts.map(parseIPv4Number);
    if (numbers.some(Number.isNaN)) return null;
    if (numbers.slice(0, -1).some((n) => n > 255) || numbers[numbers.length - 1] >= 256 ** (5 - numbers.length)) return null;
    let ipv4 = numbers[numbers.length - 1];
    for (let i = 0; i < numbers.length - 1; i++) ipv4 += numbers[i] * 256 ** (3 - i);
    const out = [];
    for (let i = 0; i < 4; i++) {
      out.unshift(ipv4 % 256);
      ipv4 = Math.floor(ipv4 / 256);
    }
    return out.join('.');
  }
  return domain;
}

function isDotSegment(segment, dots) {
  const lowered = segment.toLowerCase().replace(/%2e/g, '.');
  return lowered === dots;
}

/** Path segments of `text` onto `segments` (dot segments applied). */
function parsePath(text, segments, special) {
  const parts = special ? text.split(/[/\\]/) : text.split('/');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    const last = i === parts.length - 1;
    if (isDotSegment(part, '..')) {
      segments.pop();
      if (last) segments.push('');
    } else if (isDotSegment(part, '.')) {
      if (last) segments.push('');
    } else {
      segments.push(percentEncode(part, PATH_SET));
    }
  }
  return segments;
}

function splitAuthority(rest, special) {
  const end = rest.search(special ? /[/\\?#]/ : /[/?#]/);
  return end === -1 ? [rest, ''] : [rest.slice(0, end), rest.slice(end)];
}

/** Parses `input` (against `base`, a parsed record) into a URL record, or null. */
function parse(input, base) {
  input = input.replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, '').replace(/[\t\n\r]/g, '');
  const record = { scheme: '', username: '', password: '', host: null, port: null, path: [], opaque: null, query: null, fragment: null };
  let rest = input;
  const hash = rest.indexOf('#');
  if (hash !== -1) {
    record.fragment = percentEncode(rest.slice(hash + 1), FRAGMENT_SET);
    rest = rest.slice(0, hash);
  }
  const schemeMatch = /^([a-zA-Z][a-zA-Z0-9+\-.]*):/.exec(rest);
  if (schemeMatch) {
    record.scheme = `${schemeMatch[1].toLowerCase()}:`;
    rest = rest.slice(schemeMatch[0].length);
    const special = isSpecial(record.scheme);
    if (special && base && base.scheme === record.scheme && !/^[/\\]/.test(rest) && record.scheme !== 'file:') {
      return relative(record, rest, base);
    }
    return afterScheme(record, rest, special, base);
  }
  if (!base) return null;
  if (base.opaque !== null) {
    if (rest !== '' || hash === -1) return null;
    return { ...base, fragment: record.fragment };
  }
  record.scheme = base.scheme;
  return relative(record, rest, base);
}

function splitQuery(record, rest, special) {
  const question = rest.indexOf('?');
  if (question === -1) return rest;
  record.query = percentEncode(rest.slice(question + 1), special ? SPECIAL_QUERY_SET : QUERY_SET);
  return rest.slice(0, question);
}

function afterScheme(record, rest, special, base) {
  if (record.scheme === 'file:') return fileUrl(record, rest, base);
  if (special) {
    rest = rest.replace(/^[/\\]*/, '');
    return withAuthority(record, rest, special);
  }
  if (rest.startsWith('//')) return withAuthority(record, rest.slice(2), special);
  rest = splitQuery(record, rest, special);
  if (rest.startsWith('/')) {
    record.path = parsePath(rest.slice(1), [], special);
    return record;
  }
  record.opaque = percentEncode(rest, new Set());
  return record;
}

function withAuthority(record, rest, special) {
  let [authority, remainder] = splitAuthority(rest, special);
  const at = authority.lastIndexOf('@');
  if (at !== -1) {
    const userinfo = authority.slice(0, at);
    authority = authority.slice(at + 1);
    const colon = userinfo.indexOf(':');
    record.username = percentEncode(colon === -1 ? userinfo : userinfo.slice(0, colon), USERINFO_SET);
    record.password = colon === -1 ? '' : percentEncode(userinfo.slice(colon + 1), USERINFO_SET);
  }
  const portMatch = /:([^\]:]*)$/.exec(authority);
  let hostText = authority;
  if (portMatch && !(authority.startsWith('[') && !authority.slice(0, portMatch.index).endsWith(']'))) {
    hostText = authority.slice(0, portMatch.index);
    const portText = portMatch[1];
    if (portText !== '') {
      if (!/^[0-9]+$/.test(portText)) return null;
      const port = Number(portText);
      if (port > 65535) return null;
      record.port = port === SPECIAL[record.scheme] ? null : port;
    }
  }
  if (hostText === '' && special) return null;
  if (hostText === '' && (record.username || record.password || record.port !== null)) return null;
  const host = hostText === '' ? '' : parseHost(hostText, special);
  if (host === null) return null;
  record.host = host;
  remainder = splitQuery(record, remainder, special);
  record.path = remainder === '' ? (special ? [''] : []) : parsePath(remainder.slice(1), [], special);
  return record;
}

function fileUrl(record, rest, base) {
  record.host = '';
  if (/^[/\\]{2}/.test(rest)) {
    const [authority, remainder] = splitAuthority(rest.slice(2), true);
    const host = authority === '' ? '' : parseHost(authority, true);
    if (host === null) return null;
    record.host = host === 'localhost' ? '' : host;
    rest = splitQuery(record, remainder, true);
    record.path = parsePath(rest.replace(/^[/\\]/, ''), [], true);
    return record;
  }
  if (/^[/\\]/.test(rest)) {
    rest = splitQuery(record, rest, true);
    record.path = parsePath(rest.slice(1), [], true);
    return record;
  }
  if (base && base.scheme === 'file:') return relative(record, rest, base);
  rest = splitQuery(record, rest, true);
  record.path = parsePath(rest, [], true);
  return record;
}

function relative(record, rest, base) {
  const special = isSpecial(record.scheme);
  if (special ? /^[/\\]{2}/.test(rest) : rest.startsWith('//')) {
    if (record.scheme === 'file:') return fileUrl(record, rest, null);
    return withAuthority(record, rest.slice(2), special);
  }
  record.username = base.username;
  record.password = base.password;
  record.host = base.host;
  record.port = base.port;
  if (special ? /^[/\\]/.test(rest) : rest.startsWith('/')) {
    rest = splitQuery(record, rest, special);
    record.path = parsePath(rest.slice(1), [], special);
    return record;
  }
  if (rest === '' || rest.startsWith('?')) {
    record.path = [...base.path];
    if (rest === '') record.query = base.query;
    else splitQuery(record, rest, special);
    return record;
  }
  rest = splitQuery(record, rest, special);
  const segments = base.path.slice(0, -1);
  record.path = parsePath(rest, segments, special);
  return record;
}

function serializePath(record) {
  if (record.opaque !== null) return record.opaque;
  if (record.path.length === 0) return '';
  return `/${record.path.join('/')}`;
}

function serializeHost(record) {
  return record.port === null ? record.host : `${record.host}:${record.port}`;
}

function serialize(record, excludeFragment = false) {
  let out = record.scheme;
  if (record.host !== null) {
    out += '//';
    if (record.username !== '' || record.password !== '') {
      out += record.username;
      if (record.password !== '') out += `:${record.password}`;
      out += '@';
    }
    out += serializeHost(record);
  } else if (record.opaque === null && record.path.length > 1 && record.path[0] === '') {
    out += '/.';
  }
  out += serializePath(record);
  if (record.query !== null) out += `?${record.query}`;
  if (!excludeFragment && record.fragment !== null) out += `#${record.fragment}`;
  return out;
}

const inspectSymbol = Symbol.for('nodejs.util.inspect.custom');
const kRecord = Symbol('url');
const kParams = Symbol('searchParams');
const kList = Symbol('list');
const kUrl = Symbol('url');

export class URL {
  constructor(input, base) {
    if (arguments.length === 0) throw coded(TypeError, 'ERR_MISSING_ARGS', 'The "url" argument must be specified');
    input = `${input}`;
    let baseRecord;
    if (base !== undefined) {
      baseRecord = parse(`${base}`);
      if (!baseRecord) throw invalidUrl(input, `${base}`);
    }
    const record = parse(input, baseRecord);
    if (!record) throw invalidUrl(input, base === undefined ? undefined : `${base}`);
    this[kRecord] = record;
    this[kParams] = null;
  }
  static canParse(input, base) {
    try {
      new URL(input, base);
      return true;
    } catch {
      return false;
    }
  }
  static parse(input, base) {
    try {
      return new URL(input, base);
    } catch {
      return null;
    }
  }
  get href() {
    return serialize(this[kRecord]);
  }
  set href(value) {
    const record = parse(`${value}`);
    if (!record) throw invalidUrl(`${value}`);
    this[kRecord] = record;
    if (this[kParams]) this[kParams][kList] = parseParams(record.query ?? '');
  }
  get origin() {
    const record = this[kRecord];
    if (record.scheme === 'blob:') {
      try {
        return new URL(serializePath(record)).origin;
      } catch {
        return 'null';
      }
    }
    if (!isSpecial(record.scheme) || record.scheme === 'file:') return 'null';
    return `${record.scheme}//${serializeHost(record)}`;
  }
  get protocol() {
    return this[kRecord].scheme;
  }
  set protocol(value) {
    const match = /^([a-zA-Z][a-zA-Z0-9+\-.]*)/.exec(`${value}`);
    if (!match) return;
    const scheme = `${match[1].toLowerCase()}:`;
    const record = this[kRecord];
    if (isSpecial(scheme) !== isSpecial(record.scheme)) return;
    if (scheme === 'file:' && (record.username || record.password || record.port !== null)) return;
    record.scheme = scheme;
    if (record.port === SPECIAL[scheme]) record.port = null;
  }
  get username() {
    return this[kRecord].username;
  }
  set username(value) {
    const record = this[kRecord];
    if (record.host === null || record.host === '' || record.scheme === 'file:') return;
    record.username = percentEncode(`${value}`, USERINFO_SET);
  }
  get password() {
    return this[kRecord].password;
  }
  set password(value) {
    const record = this[kRecord];
    if (record.host === null || record.host === '' || record.scheme === 'file:') return;
    record.password = percentEncode(`${value}`, USERINFO_SET);
  }
  get host() {
    const record = this[kRecord];
    return record.host === null ? '' : serializeHost(record);
  }
  set host(value) {
    const record = this[kRecord];
    if (record.opaque !== null) return;
    const parsed = parse(`${record.scheme}//${value}`);
    if (!parsed || parsed.host === null || (parsed.host === '' && isSpecial(record.scheme))) return;
    record.host = parsed.host;
    if (/:\d*$/.test(`${value}`.replace(/\[.*\]/, ''))) record.port = parsed.port;
  }
  get hostname() {
    return this[kRecord].host ?? '';
  }
  set hostname(value) {
    const record = this[kRecord];
    if (record.opaque !== null) return;
    const text = `${value}`.split(/[/?#\\]/)[0];
    const host = parseHost(text.replace(/:.*$/, ''), isSpecial(record.scheme));
    if (host === null || (host === '' && isSpecial(record.scheme))) return;
    record.host = host;
  }
  get port() {
    const port = this[kRecord].port;
    return port === null ? '' : String(port);
  }
  set port(value) {
    const record = this[kRecord];
    if (record.host === null || record.host === '' || record.scheme === 'file:') return;
    const text = `${value}`;
    if (text === '') {
      record.port = null;
      return;
    }
    const digits = /^[0-9]+/.exec(text);
    if (!digits) return;
    const port = Number(digits[0]);
    if (port > 65535) return;
    record.port = port === SPECIAL[record.scheme] ? null : port;
  }
  get pathname() {
    return serializePath(this[kRecord]);
  }
  set pathname(value) {
    const record = this[kRecord];
    if (record.opaque !== null) return;
    const special = isSpecial(record.scheme);
    const text = `${value}`.replace(/[?#]/g, (c) => (c === '?' ? '%3F' : '%23'));
    record.path = parsePath(text.replace(special ? /^[/\\]/ : /^\//, ''), [], special);
  }
  get search() {
    const query = this[kRecord].query;
    return query === null || query === '' ? '' : `?${query}`;
  }
  set search(value) {
    const record = this[kRecord];
    const text = `${value}`.replace(/^\?/, '');
    record.query = text === '' && `${value}` === '' ? null : percentEncode(text, isSpecial(record.scheme) ? SPECIAL_QUERY_SET : QUERY_SET);
    if (this[kParams]) this[kParams][kList] = parseParams(record.query ?? '');
  }
  get searchParams() {
    if (!this[kParams]) {
      const params = new URLSearchParams(this[kRecord].query ?? '');
      params[kUrl] = this;
      this[kParams] = params;
    }
    return this[kParams];
  }
  get hash() {
    const fragment = this[kRecord].fragment;
    return fragment === null || fragment === '' ? '' : `#${fragment}`;
  }
  set hash(value) {
    const text = `${value}`.replace(/^#/, '');
    this[kRecord].fragment = text === '' && `${value}` === '' ? null : percentEncode(text, FRAGMENT_SET);
  }
  toString() {
    return this.href;
  }
  toJSON() {
    return this.href;
  }
  [inspectSymbol](depth, options, inspect) {
    const fields = {
      href: this.href, origin: this.origin, protocol: this.protocol, username: this.username, password: this.password,
      host: this.host, hostname: this.hostname, port: this.port, pathname: this.pathname, search: this.search,
      searchParams: this.searchParams, hash: this.hash,
    };
    if (depth !== null && depth < 0) return options.stylize('[URL]', 'special');
    const body = typeof inspect === 'function' ? inspect(fields, { ...options, depth: depth === null ? null : depth }) : JSON.stringify(fields);
    return `${this.constructor.name} ${body}`;
  }
}
Object.defineProperty(URL.prototype, Symbol.toStringTag, { value: 'URL', configurable: true });
for (const name of ['href', 'origin', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'searchParams', 'hash', 'toString', 'toJSON']) {
  Object.defineProperty(URL.prototype, name, { ...Object.getOwnPropertyDescriptor(URL.prototype, name), enumerable: true });
}
URL.createObjectURL = () => {
  throw coded(Error, 'ERR_UNSUPPORTED', 'URL.createObjectURL is not supported by this runtime (secure-exec)');
};
URL.revokeObjectURL = () => {};

// application/x-www-form-urlencoded.
function formDecode(text) {
  return percentDecodeToString(text.replace(/\+/g, ' '));
}

function formEncode(text) {
  let out = '';
  for (const byte of encoder.encode(text)) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9*\-._]/.test(c)) out += c;
    else if (byte === 0x20) out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function parseParams(text) {
  const list = [];
  for (const part of text.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq === -1 ? part : part.slice(0, eq);
    const value = eq === -1 ? '' : part.slice(eq + 1);
    list.push([formDecode(name), formDecode(value)]);
  }
  return list;
}

function toUSV(value) {
  const text = `${value}`;
  return typeof text.toWellFormed === 'function' ? text.toWellFormed() : text;
}

export class URLSearchParams {
  constructor(init = undefined) {
    this[kList] = [];
    this[kUrl] = null;
    if (init === undefined || init === null) return;
    if (typeof init === 'object' || typeof init === 'function') {
      if (typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const items = [...pair];
          if (items.length !== 2) {
            throw coded(TypeError, 'ERR_INVALID_TUPLE', 'Each query pair must be an iterable [name, value] tuple');
          }
          this[kList].push([toUSV(items[0]), toUSV(items[1])]);
        }
      } else {
        for (const key of Object.keys(init)) this[kList].push([toUSV(key), toUSV(init[key])]);
      }
      return;
    }
    const text = toUSV(init);
    this[kList] = parseParams(text.startsWith('?') ? text.slice(1) : text);
  }
  _update() {
    const url = this[kUrl];
    if (url) {
      const text = this.toString();
      url[kRecord].query = text === '' ? null : text;
    }
  }
  get size() {
    return this[kList].length;
  }
  append(name, value) {
    this[kList].push([toUSV(name), toUSV(value)]);
    this._update();
  }
  delete(name, value) {
    name = toUSV(name);
    this[kList] = this[kList].filter(([n, v]) => n !== name || (value !== undefined && v !== toUSV(value)));
    this._update();
  }
  get(name) {
    name = toUSV(name);
    const found = this[kList].find(([n]) => n === name);
    return found ? found[1] : null;
  }
  getAll(name) {
    name = toUSV(name);
    return this[kList].filter(([n]) => n === name).map(([, v]) => v);
  }
  has(name, value) {
    name = toUSV(name);
    return this[kList].some(([n, v]) => n === name && (value === undefined || v === toUSV(value)));
  }
  set(name, value) {
    name = toUSV(name);
    value = toUSV(value);
    const index = this[kList].findIndex(([n]) => n === name);
    if (index === -1) this[kList].push([name, value]);
    else {
      this[kList][index][1] = value;
      this[kList] = this[kList].filter(([n], i) => n !== name || i === index);
    }
    this._update();
  }
  sort() {
    const indexed = this[kList].map((pair, index) => [pair, index]);
    indexed.sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1]));
    this[kList] = indexed.map(([pair]) => pair);
    this._update();
  }
  forEach(callback, thisArg) {
    if (typeof callback !== 'function') throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "callback" argument must be of type function');
    for (let i = 0; i < this[kList].length; i++) {
      const [name, value] = this[kList][i];
      Reflect.apply(callback, thisArg, [value, name, this]);
    }
  }
  *entries() {
    for (let i = 0; i < this[kList].length; i++) yield [...this[kList][i]];
  }
  *keys() {
    for (let i = 0; i < this[kList].length; i++) yield this[kList][i][0];
  }
  *values() {
    for (let i = 0; i < this[kList].length; i++) yield this[kList][i][1];
  }
  [Symbol.iterator]() {
    return this.entries();
  }
  toString() {
    return this[kList].map(([name, value]) => `${formEncode(name)}=${formEncode(value)}`).join('&');
  }
  [inspectSymbol](depth, options, inspect) {
    if (depth !== null && depth < 0) return options.stylize('[Object]', 'special');
    const name = this.constructor.name;
    if (this[kList].length === 0) return `${name} {}`;
    const show = (value) => (typeof inspect === 'function' ? inspect(value, options) : JSON.stringify(value));
    const items = this[kList].map(([n, v]) => `${show(n)} => ${show(v)}`);
    const line = `${name} { ${items.join(', ')} }`;
    return line.length <= (options.breakLength ?? 80) ? line : `${name} {\n  ${items.join(',\n  ')} }`;
  }
}
Object.defineProperty(URLSearchParams.prototype, Symbol.toStringTag, { value: 'URLSearchParams', configurable: true });
Object.defineProperty(URLSearchParams.prototype, '_update', { enumerable: false });

// The `url` helpers on WHATWG URLs.
export function fileURLToPath(path) {
  let url = path;
  if (typeof path === 'string') url = new URL(path);
  else if (!(path instanceof URL) && !(path && typeof path === 'object' && typeof path.href === 'string' && 'protocol' in path)) {
    throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', `The "path" argument must be of type string or an instance of URL. Received ${path === null ? 'null' : typeof path}`);
  }
  if (url.protocol !== 'file:') throw coded(TypeError, 'ERR_INVALID_URL_SCHEME', 'The URL must be of scheme file');
  if (url.hostname !== '') {
    throw coded(TypeError, 'ERR_INVALID_FILE_URL_HOST', 'File URL host must be "localhost" or empty on linux');
  }
  const pathname = url.pathname;
  if (/%2f/i.test(pathname)) {
    throw coded(TypeError, 'ERR_INVALID_FILE_URL_PATH', 'File URL path must not include encoded / characters');
  }
  return decodeURIComponent(pathname);
}

export function pathToFileURL(filepath, resolvePath) {
  let resolved = resolvePath(filepath);
  if (filepath.endsWith('/') && !resolved.endsWith('/')) resolved += '/';
  const encoded = resolved.replace(/%/g, '%25').replace(/\\/g, '%5C').replace(/\n/g, '%0A').replace(/\r/g, '%0D')
    .replace(/\t/g, '%09').replace(/\?/g, '%3F').replace(/#/g, '%23');
  return new URL(`file://${encoded}`);
}

export function urlToHttpOptions(url) {
  const options = {
    protocol: url.protocol,
    hostname: typeof url.hostname === 'string' && url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
    hash: url.hash,
    search: url.search,
    pathname: url.pathname,
    path: `${url.pathname || ''}${url.search || ''}`,
    href: url.href,
  };
  if (url.port !== '') options.port = Number(url.port);
  if (url.username || url.password) options.auth = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  return options;
}

export function domainToASCII(domain) {
  const host = parseHost(`${domain}`, true);
  return host === null ? '' : host;
}

export function domainToUnicode(domain) {
  return domainToASCII(domain);
}

/** url.format(URL, options): the href with parts left out as the options say. */
export function formatURL(url, options = {}) {
  const { auth = true, fragment = true, search = true } = options ?? {};
  const record = { ...url[kRecord] };
  if (!auth) {
    record.username = '';
    record.password = '';
  }
  if (!search) record.query = null;
  return serialize(record, !fragment);
}
