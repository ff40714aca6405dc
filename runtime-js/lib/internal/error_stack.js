// Error stacks as V8 writes them: `Name: message` then the frames (QuickJS keeps the frames
// alone), written when `stack` is first read (so a name or message set after construction shows,
// as in Node) and kept as an own property; `stack` may be set to any value; captureStackTrace
// writes the same header.
const nativeStack = Object.getOwnPropertyDescriptor(Error.prototype, 'stack');

function header(error) {
  try {
    return Error.prototype.toString.call(error);
  } catch {
    return 'Error';
  }
}

function withHeader(error, frames) {
  const body = frames.endsWith('\n') ? frames.slice(0, -1) : frames;
  return body ? `${header(error)}\n${body}` : header(error);
}

function define(target, value) {
  try {
    Object.defineProperty(target, 'stack', { value, writable: true, configurable: true, enumerable: false });
  } catch {}
}

if (nativeStack && typeof nativeStack.get === 'function') {
  Object.defineProperty(Error.prototype, 'stack', {
    configurable: true,
    enumerable: false,
    get() {
      const frames = nativeStack.get.call(this);
      if (typeof frames !== 'string') return frames;
      // A stack the program's Error.prepareStackTrace made is its own.
      const value = typeof Error.prepareStackTrace === 'function' ? frames : withHeader(this, frames);
      define(this, value);
      return value;
    },
    set(value) {
      if (this === Error.prototype) return;
      define(this, value);
    },
  });
}

const nativeCapture = Error.captureStackTrace;
if (typeof nativeCapture === 'function') {
  Error.captureStackTrace = function captureStackTrace(target, constructorOpt) {
    nativeCapture(target, typeof constructorOpt === 'function' ? constructorOpt : captureStackTrace);
    const own = Object.getOwnPropertyDescriptor(target, 'stack');
    if (own && typeof own.value === 'string' && typeof Error.prepareStackTrace !== 'function') {
      // The header is written when the stack is first read, as V8's is (a name set after the
      // capture shows).
      const frames = own.value;
      Object.defineProperty(target, 'stack', {
        configurable: true,
        enumerable: false,
        get() {
          const value = withHeader(target, frames);
          define(target, value);
          return value;
        },
        set(value) {
          define(target, value);
        },
      });
    }
  };
}
if (typeof Error.stackTraceLimit !== 'number') Error.stackTraceLimit = 10;
