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
    const bytes = this.encode(input);
    const written = Math.min(bytes.length, destination.length);
    destination.set(bytes.subarray(0, written));
    return { read: String(input).length, written };
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

export class TextDecoder {
  constructor(encoding = 'utf-8', options = {}) {
    const label = String(encoding).toLowerCase();
    if (label !== 'utf-8' && label !== 'utf8' && label !== 'unicode-1-1-utf-8') {
      const error = new RangeError(`The "${encoding}" encoding is not supported`);
      error.code = 'ERR_ENCODING_NOT_SUPPORTED';
      throw error;
    }
    this.fatal = Boolean(options.fatal);
    this.ignoreBOM = Boolean(options.ignoreBOM);
    this._pending = new Uint8Array(0);
  }
  get encoding() {
    return 'utf-8';
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
    let end = bytes.length;
    if (options.stream) {
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
    if (!this.ignoreBOM && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
    const text = decodeUtf8(bytes, start, end);
    if (this.fatal && text.includes('\ufffd')) {
      const error = new TypeError('The encoded data was not valid for encoding utf-8');
      error.code = 'ERR_ENCODING_INVALID_ENCODED_DATA';
      throw error;
    }
    return text;
  }
}
