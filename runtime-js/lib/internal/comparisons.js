// util.isDeepStrictEqual: Node's strict deep equality (the rules of assert.deepStrictEqual):
// same prototypes and tags, Object.is for primitives, own enumerable keys (symbols too),
// Map and Set by content, Dates by time, RegExps by source/flags/lastIndex, boxed primitives by
// value, errors by name and message too, typed arrays and ArrayBuffers by bytes; cycles allowed.
import {
  isArrayBuffer, isBoxedPrimitive, isDataView, isDate, isError, isMap, isRegExp, isSet, isTypedArray,
  isWeakMap, isWeakSet,
} from './inspect.js';

function ownKeys(value) {
  const keys = Object.keys(value);
  for (const symbol of Object.getOwnPropertySymbols(value)) {
    if (Object.prototype.propertyIsEnumerable.call(value, symbol)) keys.push(symbol);
  }
  return keys;
}

function bytesOf(view) {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function sameBytes(a, b) {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isPrimitive(value) {
  return value === null || (typeof value !== 'object' && typeof value !== 'function');
}

function setHasEqual(set, value, memos) {
  for (const candidate of set) {
    if (innerEqual(value, candidate, memos)) {
      set.delete(candidate);
      return true;
    }
  }
  return false;
}

function setEquiv(a, b, memos) {
  let pending = null;
  for (const value of a) {
    if (!isPrimitive(value)) {
      pending ??= new Set();
      pending.add(value);
    } else if (!b.has(value)) return false;
  }
  if (pending === null) return true;
  const candidates = new Set();
  for (const value of b) if (!isPrimitive(value)) candidates.add(value);
  for (const value of pending) if (!setHasEqual(candidates, value, memos)) return false;
  return candidates.size === 0;
}

function mapEquiv(a, b, memos) {
  let pending = null;
  for (const [key, value] of a) {
    if (!isPrimitive(key)) {
      pending ??= [];
      pending.push([key, value]);
    } else {
      if (!b.has(key) || !innerEqual(value, b.get(key), memos)) return false;
    }
  }
  if (pending === null) return true;
  const candidates = [];
  for (const [key, value] of b) if (!isPrimitive(key)) candidates.push([key, value]);
  for (const [key, value] of pending) {
    const index = candidates.findIndex(([k, v]) => innerEqual(key, k, memos) && innerEqual(value, v, memos));
    if (index === -1) return false;
    candidates.splice(index, 1);
  }
  return candidates.length === 0;
}

function keysEquiv(a, b, memos) {
  const aKeys = ownKeys(a);
  const bKeys = ownKeys(b);
  if (aKeys.length !== bKeys.length) return false;
  for (const key of aKeys) {
    if (!Object.prototype.propertyIsEnumerable.call(b, key)) return false;
  }
  for (const key of aKeys) {
    if (!innerEqual(a[key], b[key], memos)) return false;
  }
  return true;
}

function innerEqual(a, b, memos) {
  if (a === b) return a !== 0 || Object.is(a, b);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b);
  }
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const tag = Object.prototype.toString.call(a);
  if (tag !== Object.prototype.toString.call(b)) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && a.length !== b.length) return false;
  if (isDate(a) !== isDate(b) || (isDate(a) && a.getTime() !== b.getTime())) return false;
  if (isRegExp(a) !== isRegExp(b) || (isRegExp(a) && (a.source !== b.source || a.flags !== b.flags || a.lastIndex !== b.lastIndex))) return false;
  if (isError(a) !== isError(b) || (isError(a) && (a.message !== b.message || a.name !== b.name))) return false;
  if (isBoxedPrimitive(a) !== isBoxedPrimitive(b) || (isBoxedPrimitive(a) && !Object.is(a.valueOf(), b.valueOf()))) return false;
  if (isTypedArray(a) || isDataView(a)) {
    if (!sameBytes(bytesOf(a), bytesOf(b))) return false;
  } else if (isArrayBuffer(a)) {
    if (!isArrayBuffer(b) || !sameBytes(new Uint8Array(a), new Uint8Array(b))) return false;
  }
  if (isWeakMap(a) || isWeakSet(a)) return false;
  if (isSet(a) !== isSet(b) || isMap(a) !== isMap(b)) return false;

  // Cycles: a pair met again is taken as equal.
  let seen = memos.get(a);
  if (seen === undefined) {
    seen = new Set();
    memos.set(a, seen);
  } else if (seen.has(b)) return true;
  seen.add(b);

  if (isTypedArray(a)) {
    const keys = (value) => ownKeys(value).filter((key) => typeof key !== 'string' || !/^(0|[1-9][0-9]*)$/.test(key));
    const aKeys = keys(a);
    const bKeys = keys(b);
    if (aKeys.length !== bKeys.length) return false;
    for (const key of aKeys) if (!innerEqual(a[key], b[key], memos)) return false;
    return true;
  }
  if (!keysEquiv(a, b, memos)) return false;
  if (isSet(a)) return a.size === b.size && setEquiv(a, b, memos);
  if (isMap(a)) return a.size === b.size && mapEquiv(a, b, memos);
  return true;
}

export function isDeepStrictEqual(a, b) {
  return innerEqual(a, b, new Map());
}
