// TextEncoder and TextDecoder (UTF-8, plus what Buffer decodes), which QuickJS lacks.

export class TextEncoder {
  get encoding() {
    return 'utf-8';
  }
  encode(input = '') {
    const text = String(input);
    const out = new Uint8Array(text.length * 3);
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      let code = text.charCodeAt(i);
      if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
        const low = text.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
          i++;
        }
      }
      if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd; // a lone surrogate
      if (code < 0x80) out[n++] = code;
      else if (code < 0x800) {
        out[n++] = 0xc0 | (code >> 6);
        out[n++] = 0x80 | (code & 63);
      } else if (code < 0x10000) {
        out[n++] = 0xe0 | (code >> 12);
        out[n++] = 0x80 | ((code >> 6) & 63);
        out[n++] = 0x80 | (code & 63);
      } else {
        out[n++] = 0xf0 | (code >> 18);
        out[n++] = 0x80 | ((code >> 12) & 63);
        out[n++] = 0x80 | ((code >> 6) & 63);
        out[n++] = 0x80 | (code & 63);
      }
    }
    return out.slice(0, n);
  }
  encodeInto(input, destination) {
    // Whole characters only: `read` counts the UTF-16 units of those that fit.
    const text = String(input);
    let read = 0;
    let written = 0;
    for (const char of text) {
      const bytes = this.encode(char);
      if (written + bytes.length > destination.length) break;
      destination.set(bytes, written);
      written += bytes.length;
      read += char.length;
    }
    return { read, written };
  }
}

/** UTF-8 bytes to text; malformed sequences become U+FFFD. */
export function decodeUtf8(bytes, start = 0, end = bytes.length) {
  let out = '';
  const parts = [];
  let i = start;
  while (i < end) {
    const byte = bytes[i];
    let code = 0xfffd;
    let size = 1;
    if (byte < 0x80) code = byte;
    else if (byte >= 0xc2 && byte < 0xe0 && i + 1 < end && (bytes[i + 1] & 0xc0) === 0x80) {
      code = ((byte & 31) << 6) | (bytes[i + 1] & 63);
      size = 2;
    } else if (byte >= 0xe0 && byte < 0xf0 && i + 2 < end && (bytes[i + 1] & 0xc0) === 0x80 && (bytes[i + 2] & 0xc0) === 0x80) {
      const value = ((byte & 15) << 12) | ((bytes[i + 1] & 63) << 6) | (bytes[i + 2] & 63);
      if (value >= 0x800 && !(value >= 0xd800 && value <= 0xdfff)) {
        code = value;
        size = 3;
      }
    } else if (byte >= 0xf0 && byte < 0xf5 && i + 3 < end && (bytes[i + 1] & 0xc0) === 0x80 && (bytes[i + 2] & 0xc0) === 0x80 && (bytes[i + 3] & 0xc0) === 0x80) {
      const value = ((byte & 7) << 18) | ((bytes[i + 1] & 63) << 12) | ((bytes[i + 2] & 63) << 6) | (bytes[i + 3] & 63);
      if (value >= 0x10000 && value <= 0x10ffff) {
        code = value;
        size = 4;
      }
    }
    i += size;
    if (code > 0xffff) {
      code -= 0x10000;
      parts.push(0xd800 + (code >> 10), 0xdc00 + (code & 1023));
    } else parts.push(code);
    if (parts.length >= 8192) {
      out += String.fromCharCode.apply(null, parts);
      parts.length = 0;
    }
  }
  return out + String.fromCharCode.apply(null, parts);
}

const UTF8_LABELS = ['utf-8', 'utf8', 'unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'x-unicode20utf8'];
const UTF16LE_LABELS = ['utf-16le', 'utf-16', 'ucs-2', 'unicode', 'csunicode', 'iso-10646-ucs-2', 'unicodefeff'];
const WINDOWS1252_LABELS = ['windows-1252', 'latin1', 'iso-8859-1', 'ascii', 'us-ascii', 'cp1252', 'l1', 'iso8859-1',
  'iso88591', 'iso_8859-1', 'iso_8859-1:1987', 'x-cp1252', 'cp819', 'ibm819', 'iso-ir-100', 'csisolatin1',
  'ansi_x3.4-1968'];
// windows-1252's bytes 0x80-0x9f (the rest are Latin-1's code points).
const WINDOWS1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

function invalidData(encoding) {
  const error = new TypeError(`The encoded data was not valid for encoding ${encoding}`);
  error.code = 'ERR_ENCODING_INVALID_ENCODED_DATA';
  return error;
}

/** Whether `bytes[start, end)` is well-formed UTF-8. */
function validUtf8(bytes, start, end) {
  for (let i = start; i < end;) {
    const byte = bytes[i];
    let size;
    let min;
    if (byte < 0x80) { i++; continue; }
    if (byte >= 0xc2 && byte < 0xe0) { size = 2; min = 0x80; }
    else if (byte >= 0xe0 && byte < 0xf0) { size = 3; min = 0x800; }
    else if (byte >= 0xf0 && byte < 0xf5) { size = 4; min = 0x10000; }
    else return false;
    if (i + size > end) return false;
    let value = byte & (size === 2 ? 31 : size === 3 ? 15 : 7);
    for (let k = 1; k < size; k++) {
      if ((bytes[i + k] & 0xc0) !== 0x80) return false;
      value = (value << 6) | (bytes[i + k] & 63);
    }
    if (value < min || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return false;
    i += size;
  }
  return true;
}

export class TextDecoder {
  constructor(encoding = 'utf-8', options = {}) {
    const label = String(encoding).trim().toLowerCase();
    if (UTF8_LABELS.includes(label)) this._encoding = 'utf-8';
    else if (UTF16LE_LABELS.includes(label)) this._encoding = 'utf-16le';
    else if (WINDOWS1252_LABELS.includes(label)) this._encoding = 'windows-1252';
    else {
      const error = new RangeError(`The "${encoding}" encoding is not supported`);
      error.code = 'ERR_ENCODING_NOT_SUPPORTED';
      throw error;
    }
    this.fatal = Boolean(options && options.fatal);
    this.ignoreBOM = Boolean(options && options.ignoreBOM);
    this._pending = new Uint8Array(0);
    this._streaming = false;
  }
  get encoding() {
    return this._encoding;
  }
  decode(input, options = {}) {
    let bytes = input === undefined ? new Uint8Array(0)
      : input instanceof ArrayBuffer ? new Uint8Array(input)
      : new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    if (this._pending.length > 0) {
      const joined = new Uint8Array(this._pending.length + bytes.length);
      joined.set(this._pending);
      joined.set(bytes, this._pending.length);
      bytes = joined;
    }
    const stream = Boolean(options && options.stream);
    // A byte order mark is taken off the start of a stream only.
    const atStart = !this._streaming;
    this._streaming = stream;
    let end = bytes.length;
    if (this._encoding === 'windows-1252') {
      this._pending = new Uint8Array(0);
      let out = '';
      for (let i = 0; i < end; i++) {
        const byte = bytes[i];
        out += String.fromCharCode(byte >= 0x80 && byte < 0xa0 ? WINDOWS1252_HIGH[byte - 0x80] : byte);
      }
      return out;
    }
    if (this._encoding === 'utf-16le') {
      if (stream) {
        end -= end % 2;
        // A high surrogate at the end waits for its pair.
        if (end >= 2) {
          const last = bytes[end - 2] | (bytes[end - 1] << 8);
          if (last >= 0xd800 && last <= 0xdbff) end -= 2;
        }
      }
      this._pending = stream ? bytes.slice(end) : new Uint8Array(0);
      let start = 0;
      if (atStart && !this.ignoreBOM && bytes[0] === 0xff && bytes[1] === 0xfe && end >= 2) start = 2;
      let out = '';
      for (let i = start; i + 1 < end; i += 2) {
        const unit = bytes[i] | (bytes[i + 1] << 8);
        if (unit >= 0xd800 && unit <= 0xdbff) {
          const next = i + 3 < end ? bytes[i + 2] | (bytes[i + 3] << 8) : -1;
          if (next >= 0xdc00 && next <= 0xdfff) {
            out += String.fromCharCode(unit, next);
            i += 2;
            continue;
          }
        }
        if (unit >= 0xd800 && unit <= 0xdfff) {
          if (this.fatal) throw invalidData('utf-16le');
          out += '\ufffd';
        } else out += String.fromCharCode(unit);
      }
      if (!stream && end % 2 === 1) {
        if (this.fatal) throw invalidData('utf-16le');
        out += '\ufffd';
      }
      return out;
    }
    if (stream) {
      // Keep an incomplete sequence at the end for the next call.
      let back = end - 1;
      while (back >= 0 && back >= end - 3 && (bytes[back] & 0xc0) === 0x80) back--;
      if (back >= 0) {
        const lead = bytes[back];
        const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
        if (end - back < need) end = back;
      }
      this._pending = bytes.slice(end);
    } else this._pending = new Uint8Array(0);
    let start = 0;
    if (atStart && !this.ignoreBOM && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
    if (this.fatal && !validUtf8(bytes, start, end)) throw invalidData('utf-8');
    return decodeUtf8(bytes, start, end);
  }
}
