// Node's behaviour where the bundled npm builtins differ from it: `url` gets the WHATWG URL and
// its helpers; `string_decoder` Node's error for an unknown encoding; `assert.throws`/`rejects`
// an AssertionError (not the thrown error) when the error does not match a RegExp, class or
// validation function; `stream/consumers`.
import { Buffer } from 'buffer';
import { coded } from './errors.js';
import { inspect } from './inspect.js';
import {
  URL, URLSearchParams, fileURLToPath, pathToFileURL, urlToHttpOptions, domainToASCII, domainToUnicode, formatURL,
} from './url.js';

export function makeUrl(npmUrl, resolvePath) {
  const format = npmUrl.format;
  return {
    ...npmUrl,
    URL,
    URLSearchParams,
    fileURLToPath,
    pathToFileURL: (path) => pathToFileURL(path, resolvePath),
    urlToHttpOptions,
    domainToASCII,
    domainToUnicode,
    format(urlObject, options) {
      if (urlObject instanceof URL) return formatURL(urlObject, options);
      return format(urlObject, options);
    },
  };
}

export function makeStringDecoder(npmDecoder) {
  const Base = npmDecoder.StringDecoder;
  const checked = (encoding) => {
    if (encoding === undefined || encoding === null) return encoding;
    const name = String(encoding);
    if (!Buffer.isEncoding(name)) throw coded(TypeError, 'ERR_UNKNOWN_ENCODING', `Unknown encoding: ${name}`);
    return name;
  };
  class StringDecoder extends Base {
    constructor(encoding) {
      super(checked(encoding));
    }
  }
  return { ...npmDecoder, StringDecoder };
}

export function makeAssert(npmAssert) {
  const { AssertionError } = npmAssert;
  const isErrorClass = (value) => typeof value === 'function' && value.prototype !== undefined &&
    (value === Error || Error.prototype.isPrototypeOf(value.prototype));
  // The expected error as a validation function that throws Node's AssertionError on a mismatch.
  const validator = (expected, message, operator, stackStartFn) => {
    if (expected instanceof RegExp) {
      return (actual) => {
        const text = String(actual);
        if (expected.test(text)) return true;
        const error = new AssertionError({
          actual,
          expected,
          message: message || `The input did not match the regular expression ${inspect(expected)}. Input:\n\n${inspect(text)}\n`,
          operator,
          stackStartFn,
        });
        error.generatedMessage = !message;
        throw error;
      };
    }
    if (isErrorClass(expected)) {
      return (actual) => {
        if (actual instanceof expected) return true;
        let text = `The error is expected to be an instance of "${expected.name}". Received `;
        if (actual && actual.constructor && actual.constructor.name) text += `"${actual.constructor.name}"`;
        else text += `"${inspect(actual, { depth: -1 })}"`;
        if (actual && actual.message !== undefined) text += `\n\nError message:\n\n${actual.message}`;
        const error = new AssertionError({ actual, expected, message: message || text, operator, stackStartFn });
        error.generatedMessage = !message;
        throw error;
      };
    }
    if (typeof expected === 'function' && expected.prototype === undefined) {
      return (actual) => {
        const result = Reflect.apply(expected, {}, [actual]);
        if (result === true) return true;
        const name = expected.name ? `"${expected.name}" ` : '';
        const text = `The ${name}validation function is expected to return "true". Received ${inspect(result)}` +
          `${actual instanceof Error ? `\n\nCaught error:\n\n${actual}` : ''}`;
        const error = new AssertionError({ actual, expected, message: message || text, operator, stackStartFn });
        error.generatedMessage = !message;
        throw error;
      };
    }
    return expected;
  };
  const throws = npmAssert.throws;
  const rejects = npmAssert.rejects;
  function patchedThrows(fn, expected, ...rest) {
    if (typeof expected === 'string' || expected === undefined) return Reflect.apply(throws, this, [fn, expected, ...rest]);
    return Reflect.apply(throws, this, [fn, validator(expected, rest[0], 'throws', patchedThrows), ...rest]);
  }
  function patchedRejects(fn, expected, ...rest) {
    if (typeof expected === 'string' || expected === undefined) return Reflect.apply(rejects, this, [fn, expected, ...rest]);
    return Reflect.apply(rejects, this, [fn, validator(expected, rest[0], 'rejects', patchedRejects), ...rest]);
  }
  for (const target of [npmAssert, npmAssert.strict]) {
    if (!target) continue;
    target.throws = patchedThrows;
    target.rejects = patchedRejects;
  }
  return npmAssert;
}

// stream/consumers: a stream's (or async iterable's) whole content.
async function chunksOf(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

async function buffer(stream) {
  const chunks = await chunksOf(stream);
  return Buffer.concat(chunks.map((chunk) => (typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength) : chunk))));
}

export const streamConsumers = {
  async arrayBuffer(stream) {
    const bytes = await buffer(stream);
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  },
  buffer,
  async text(stream) {
    const decoder = new TextDecoder();
    let out = '';
    for await (const chunk of stream) out += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    return out + decoder.decode();
  },
  async json(stream) {
    return JSON.parse(await streamConsumers.text(stream));
  },
  async blob(stream) {
    if (typeof Blob !== 'function') throw coded(Error, 'ERR_UNSUPPORTED', 'Blob is not supported by this runtime (secure-exec)');
    return new Blob(await chunksOf(stream));
  },
};
