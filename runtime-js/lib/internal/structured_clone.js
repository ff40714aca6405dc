// structuredClone: the HTML structured clone algorithm for the values a program sends through
// it (QuickJS has none): primitives, plain objects and arrays, Date, RegExp, Map, Set, boxed
// primitives, ArrayBuffer and its views, Error; shared and circular references kept; functions,
// symbols and other platform objects refused with a DataCloneError.
import { DOMException } from './web.js';
import {
  isArrayBuffer, isBoxedPrimitive, isDataView, isDate, isError, isMap, isPromise, isRegExp, isSet, isTypedArray,
  isWeakMap, isWeakSet,
} from './inspect.js';

const ERROR_CONSTRUCTORS = {
  Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError,
};

function uncloneable(value) {
  const what = typeof value === 'function' ? `${value.toString().split('\n')[0].slice(0, 60)}`
    : typeof value === 'symbol' ? value.toString() : Object.prototype.toString.call(value);
  return new DOMException(`${what} could not be cloned.`, 'DataCloneError');
}

export function structuredClone(value, options) {
  if (arguments.length === 0) {
    const error = new TypeError('The "value" argument must be specified');
    error.code = 'ERR_MISSING_ARGS';
    throw error;
  }
  const transfer = options && Array.isArray(options.transfer) ? options.transfer : [];
  const memory = new Map();
  const clone = (input) => {
    if (typeof input === 'symbol' || typeof input === 'function') throw uncloneable(input);
    if (input === null || typeof input !== 'object') return input;
    if (memory.has(input)) return memory.get(input);
    let output;
    if (isBoxedPrimitive(input)) {
      if (typeof input.valueOf() === 'symbol') throw uncloneable(input);
      output = Object(input.valueOf());
    } else if (isDate(input)) {
      output = new Date(input.getTime());
    } else if (isRegExp(input)) {
      output = new RegExp(input.source, input.flags);
    } else if (isArrayBuffer(input)) {
      output = transfer.includes(input) ? input : input.slice(0);
    } else if (isTypedArray(input) || isDataView(input)) {
      const buffer = clone(input.buffer);
      const Constructor = isDataView(input) ? DataView : globalThis[Object.prototype.toString.call(input).slice(8, -1)];
      const length = isDataView(input) ? input.byteLength : input.length;
      output = new Constructor(buffer, input.byteOffset, length);
    } else if (isMap(input)) {
      output = new Map();
      memory.set(input, output);
      for (const [k, v] of input) output.set(clone(k), clone(v));
      return output;
    } else if (isSet(input)) {
      output = new Set();
      memory.set(input, output);
      for (const v of input) output.add(clone(v));
      return output;
    } else if (isError(input)) {
      const name = ERROR_CONSTRUCTORS[input.name] ? input.name : 'Error';
      output = Object.create(ERROR_CONSTRUCTORS[name].prototype);
      memory.set(input, output);
      const message = Object.getOwnPropertyDescriptor(input, 'message');
      if (message) Object.defineProperty(output, 'message', { value: String(input.message), writable: true, configurable: true });
      if (typeof input.stack === 'string') Object.defineProperty(output, 'stack', { value: input.stack, writable: true, configurable: true });
      if ('cause' in input) Object.defineProperty(output, 'cause', { value: clone(input.cause), writable: true, configurable: true });
      return output;
    } else if (Array.isArray(input)) {
      output = new Array(input.length);
      memory.set(input, output);
      for (const key of Object.keys(input)) output[key] = clone(input[key]);
      return output;
    } else {
      if (isWeakMap(input) || isWeakSet(input) || isPromise(input)) throw uncloneable(input);
      output = {};
      memory.set(input, output);
      for (const key of Object.keys(input)) output[key] = clone(input[key]);
      return output;
    }
    memory.set(input, output);
    return output;
  };
  return clone(value);
}
