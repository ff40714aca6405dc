// `querystring`: Node's (parse into a null-prototype object, skipping empty pairs and keeping
// malformed percent sequences; stringify of strings, finite numbers, bigints and booleans;
// escape, unescape and unescapeBuffer, which parse and stringify use).
import { Buffer } from 'buffer';

function unhex(code) {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

export function unescapeBuffer(s, decodeSpaces) {
  const out = Buffer.allocUnsafe(s.length);
  let index = 0;
  let outIndex = 0;
  const maxLength = s.length - 2;
  let hasHex = false;
  while (index < s.length) {
    let currentChar = s.charCodeAt(index);
    if (currentChar === 43 && decodeSpaces) {
      out[outIndex++] = 32;
      index++;
      continue;
    }
    if (currentChar === 37 && index < maxLength) {
      currentChar = s.charCodeAt(++index);
      const hexHigh = unhex(currentChar);
      if (!(hexHigh >= 0)) {
        out[outIndex++] = 37;
        continue;
      } else {
        const nextChar = s.charCodeAt(++index);
        const hexLow = unhex(nextChar);
        if (!(hexLow >= 0)) {
          out[outIndex++] = 37;
          index--;
        } else {
          hasHex = true;
          currentChar = hexHigh * 16 + hexLow;
        }
      }
    }
    out[outIndex++] = currentChar;
    index++;
  }
  return hasHex ? out.slice(0, outIndex) : out;
}

export function unescape(s, decodeSpaces) {
  try {
    return decodeURIComponent(s);
  } catch {
    return querystring.unescapeBuffer(s, decodeSpaces).toString();
  }
}

export function escape(str) {
  if (typeof str !== 'string') {
    if (typeof str === 'object') str = String(str);
    else str += '';
  }
  try {
    return encodeURIComponent(str);
  } catch {
    const error = new URIError('URI malformed');
    error.code = 'ERR_INVALID_URI';
    throw error;
  }
}

function encodeValue(value, encode) {
  if (typeof value === 'string') return value.length ? encode(value) : '';
  if (typeof value === 'number' && Number.isFinite(value)) return Math.abs(value) < 1e21 ? `${value}` : encode(`${value}`);
  if (typeof value === 'bigint') return `${value}`;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return '';
}

export function stringify(obj, sep, eq, options) {
  sep = sep || '&';
  eq = eq || '=';
  const encode = options && typeof options.encodeURIComponent === 'function' ? options.encodeURIComponent : querystring.escape;
  if (obj === null || typeof obj !== 'object') return '';
  let fields = '';
  for (const key of Object.keys(obj)) {
    const value = obj[key];
    const ks = `${encodeValue(key, encode)}${eq}`;
    if (Array.isArray(value)) {
      if (value.length === 0) continue;
      if (fields) fields += sep;
      for (let j = 0; j < value.length; j++) {
        if (j) fields += sep;
        fields += ks + encodeValue(value[j], encode);
      }
    } else {
      if (fields) fields += sep;
      fields += ks + encodeValue(value, encode);
    }
  }
  return fields;
}

function decodeStr(s, decoder) {
  try {
    return decoder(s);
  } catch {
    return querystring.unescape(s, true);
  }
}

export function parse(qs, sep, eq, options) {
  const obj = { __proto__: null };
  if (typeof qs !== 'string' || qs.length === 0) return obj;
  sep = sep ? String(sep) : '&';
  eq = eq ? String(eq) : '=';
  let maxKeys = 1000;
  if (options && typeof options.maxKeys === 'number') maxKeys = options.maxKeys;
  const decode = options && typeof options.decodeURIComponent === 'function' ? options.decodeURIComponent : querystring.unescape;
  let pairs = 0;
  for (const part of qs.split(sep)) {
    if (maxKeys > 0 && pairs >= maxKeys) break;
    pairs++;
    if (part.length === 0) continue;
    const at = part.indexOf(eq);
    const rawKey = at === -1 ? part : part.slice(0, at);
    const rawValue = at === -1 ? '' : part.slice(at + eq.length);
    const key = decodeStr(rawKey.replace(/\+/g, '%20'), decode);
    const value = decodeStr(rawValue.replace(/\+/g, '%20'), decode);
    if (!(key in obj)) obj[key] = value;
    else if (Array.isArray(obj[key])) obj[key].push(value);
    else obj[key] = [obj[key], value];
  }
  return obj;
}

const querystring = {
  unescapeBuffer,
  unescape,
  escape,
  stringify,
  encode: stringify,
  parse,
  decode: parse,
};
export default querystring;
