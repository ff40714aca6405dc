// What Node's Buffer has beyond the bundled npm `buffer` (6.0): the `base64url` encoding, Node's
// error codes (ERR_OUT_OF_RANGE, ERR_INVALID_BUFFER_SIZE, ERR_UNKNOWN_ENCODING,
// ERR_INVALID_ARG_TYPE) on the errors its methods throw, and Node's `util.inspect` notation
// (`<Buffer 01 02 ... 8 more bytes>`).
import bufferModule, { Buffer } from 'buffer';

const INSPECT_MAX_BYTES = 50;

function isBase64url(encoding) {
  return typeof encoding === 'string' && (encoding === 'base64url' || encoding.toLowerCase() === 'base64url');
}

function toBase64(text) {
  return String(text).replace(/-/g, '+').replace(/_/g, '/');
}

function codeFor(error) {
  if (!error || typeof error !== 'object' || error.code !== undefined) return error;
  const message = String(error.message);
  if (error instanceof RangeError) {
    if (/multiple of/.test(message)) error.code = 'ERR_INVALID_BUFFER_SIZE';
    else if (/outside of buffer bounds/.test(message)) error.code = 'ERR_BUFFER_OUT_OF_BOUNDS';
    else error.code = 'ERR_OUT_OF_RANGE';
  } else if (error instanceof TypeError) {
    if (/Unknown encoding|encoding must be/.test(message)) error.code = 'ERR_UNKNOWN_ENCODING';
    else error.code = 'ERR_INVALID_ARG_TYPE';
  }
  return error;
}

// The bytes a read or write method touches (readUIntLE and the like take them as an argument).
function accessSize(name, args) {
  if (/^(read|write)U?Int(LE|BE)$/.test(name)) return Number(args[name.startsWith('read') ? 1 : 2]);
  const match = /^(?:read|write)(?:Big)?U?[Ii]nt(8|16|32|64)|^(?:read|write)(Float|Double)/.exec(name);
  if (!match) return 0;
  if (match[2]) return match[2] === 'Float' ? 4 : 8;
  return Number(match[1]) / 8;
}

function withCodes(owner, name) {
  const original = owner[name];
  if (typeof original !== 'function') return;
  const wrapped = {
    [name]() {
      try {
        return Reflect.apply(original, this, arguments);
      } catch (error) {
        const args = arguments;
        // A buffer smaller than the value read or written: Node's ERR_BUFFER_OUT_OF_BOUNDS.
        if (error instanceof RangeError && error.code === undefined && this && this.length < accessSize(name, args)) {
          error.code = 'ERR_BUFFER_OUT_OF_BOUNDS';
          error.message = 'Attempt to access memory outside buffer bounds';
        }
        throw codeFor(error);
      }
    },
  }[name];
  Object.defineProperty(owner, name, { value: wrapped, writable: true, configurable: true, enumerable: false });
}

// base64url.
const isEncoding = Buffer.isEncoding;
Buffer.isEncoding = function isEncoding_(encoding) {
  return isBase64url(encoding) || isEncoding(encoding);
};
const from = Buffer.from;
Buffer.from = function from_(value, encodingOrOffset, length) {
  if (typeof value === 'string' && isBase64url(encodingOrOffset)) return Reflect.apply(from, this, [toBase64(value), 'base64']);
  return Reflect.apply(from, this, [value, encodingOrOffset, length]);
};
const byteLength = Buffer.byteLength;
Buffer.byteLength = function byteLength_(string, encoding) {
  if (typeof string === 'string' && isBase64url(encoding)) return byteLength(toBase64(string), 'base64');
  return byteLength(string, encoding);
};
const proto = Buffer.prototype;
const toString = proto.toString;
proto.toString = function toString_(encoding, start, end) {
  if (isBase64url(encoding)) {
    return Reflect.apply(toString, this, ['base64', start, end]).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  return Reflect.apply(toString, this, arguments);
};
const write = proto.write;
proto.write = function write_(string, offset, length, encoding) {
  const args = [...arguments];
  for (let i = 1; i < args.length; i++) {
    if (isBase64url(args[i])) {
      args[i] = 'base64';
      args[0] = toBase64(string);
    }
  }
  return Reflect.apply(write, this, args);
};
const fill = proto.fill;
proto.fill = function fill_(value, offset, end, encoding) {
  const args = [...arguments];
  for (let i = 1; i < args.length; i++) {
    if (isBase64url(args[i]) && typeof value === 'string') {
      args[i] = 'base64';
      args[0] = toBase64(value);
    }
  }
  return Reflect.apply(fill, this, args);
};

// A plain Uint8Array is as good as a Buffer to equals and compare.
const asBuffer = (value) => (value instanceof Uint8Array && !Buffer.isBuffer(value)
  ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : value);
const equals = proto.equals;
proto.equals = function equals_(other) {
  return Reflect.apply(equals, asBuffer(this), [asBuffer(other)]);
};
const compare = proto.compare;
proto.compare = function compare_(target, ...rest) {
  return Reflect.apply(compare, asBuffer(this), [asBuffer(target), ...rest]);
};
const staticCompare = Buffer.compare;
Buffer.compare = function compare(a, b) {
  return staticCompare(asBuffer(a), asBuffer(b));
};

// Node's error codes.
for (const name of Object.getOwnPropertyNames(proto)) {
  if (/^(read|write)|^swap(16|32|64)$|^(fill|copy|toString|compare|equals|indexOf|lastIndexOf|includes|slice|subarray)$/.test(name)) {
    withCodes(proto, name);
  }
}
for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow', 'from', 'concat', 'byteLength', 'compare']) withCodes(Buffer, name);

// util.inspect.
proto[Symbol.for('nodejs.util.inspect.custom')] = function inspect(recurseTimes, ctx, inspectValue) {
  const max = INSPECT_MAX_BYTES;
  const actualMax = Math.min(max, this.length);
  const remaining = this.length - max;
  let str = '';
  for (let i = 0; i < actualMax; i++) str += `${i > 0 ? ' ' : ''}${this[i].toString(16).padStart(2, '0')}`;
  if (remaining > 0) str += ` ... ${remaining} more byte${remaining > 1 ? 's' : ''}`;
  if (ctx && typeof inspectValue === 'function') {
    const extras = { __proto__: null };
    let any = false;
    for (const key of Object.keys(this)) {
      if (/^(0|[1-9][0-9]*)$/.test(key)) continue;
      extras[key] = this[key];
      any = true;
    }
    if (any) {
      if (this.length !== 0) str += ', ';
      str += inspectValue(extras, { ...ctx, breakLength: Infinity, compact: true }).slice(27, -2);
    }
  }
  return `<${this.constructor.name} ${str}>`;
};
proto.inspect = proto[Symbol.for('nodejs.util.inspect.custom')];

// The module's other members.
bufferModule.constants ??= { MAX_LENGTH: bufferModule.kMaxLength, MAX_STRING_LENGTH: 2 ** 29 - 24 };
bufferModule.kStringMaxLength ??= bufferModule.constants.MAX_STRING_LENGTH;
bufferModule.atob ??= (data) => globalThis.atob(data);
bufferModule.btoa ??= (data) => globalThis.btoa(data);
bufferModule.isUtf8 ??= (input) => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(input);
    return true;
  } catch {
    return false;
  }
};
bufferModule.isAscii ??= (input) => {
  const bytes = input instanceof ArrayBuffer ? new Uint8Array(input) : new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  return bytes.every((byte) => byte < 0x80);
};
Buffer.copyBytesFrom ??= function copyBytesFrom(view, offset = 0, length) {
  if (!ArrayBuffer.isView(view) || view instanceof DataView) {
    throw codeFor(new TypeError('The "view" argument must be an instance of TypedArray.'));
  }
  const end = length === undefined ? view.length : Math.min(view.length, offset + length);
  const slice = view.subarray(Math.min(offset, view.length), end);
  return Buffer.from(new Uint8Array(slice.buffer, slice.byteOffset, slice.byteLength));
};

export { Buffer };
