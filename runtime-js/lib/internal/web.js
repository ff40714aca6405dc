// The web platform globals Node has and QuickJS lacks: Event, EventTarget, AbortController,
// AbortSignal, DOMException (what bundled packages such as readable-stream expect).

export class DOMException extends Error {
  constructor(message = '', name = 'Error') {
    super(message);
    this.name = name;
  }
}

export class Event {
  constructor(type, options = {}) {
    this.type = String(type);
    this.cancelable = Boolean(options.cancelable);
    this.bubbles = Boolean(options.bubbles);
    this.defaultPrevented = false;
    this.timeStamp = performance.now();
    this.target = null;
    this.currentTarget = null;
  }
  preventDefault() {
    if (this.cancelable) this.defaultPrevented = true;
  }
  stopPropagation() {}
  stopImmediatePropagation() {
    this._stopped = true;
  }
}

export class EventTarget {
  constructor() {
    Object.defineProperty(this, '_listeners', { value: new Map() });
  }
  addEventListener(type, listener, options = {}) {
    if (!listener) return;
    const once = typeof options === 'object' && Boolean(options.once);
    const list = this._listeners.get(type) ?? [];
    if (list.some((entry) => entry.listener === listener)) return;
    list.push({ listener, once });
    this._listeners.set(type, list);
    if (typeof options === 'object' && options.signal) {
      options.signal.addEventListener('abort', () => this.removeEventListener(type, listener));
    }
  }
  removeEventListener(type, listener) {
    const list = this._listeners.get(type);
    if (list) this._listeners.set(type, list.filter((entry) => entry.listener !== listener));
  }
  dispatchEvent(event) {
    event.target = this;
    event.currentTarget = this;
    const handler = this[`on${event.type}`];
    if (typeof handler === 'function') handler.call(this, event);
    for (const entry of [...(this._listeners.get(event.type) ?? [])]) {
      if (entry.once) this.removeEventListener(event.type, entry.listener);
      if (typeof entry.listener === 'function') entry.listener.call(this, event);
      else entry.listener.handleEvent(event);
      if (event._stopped) break;
    }
    return !event.defaultPrevented;
  }
}

export class AbortSignal extends EventTarget {
  constructor() {
    super();
    this.aborted = false;
    this.reason = undefined;
    this.onabort = null;
  }
  throwIfAborted() {
    if (this.aborted) throw this.reason;
  }
  static abort(reason) {
    const controller = new AbortController();
    controller.abort(reason);
    return controller.signal;
  }
  static timeout(ms) {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), ms).unref();
    return controller.signal;
  }
  static any(signals) {
    const controller = new AbortController();
    for (const signal of signals) {
      if (signal.aborted) {
        controller.abort(signal.reason);
        break;
      }
      signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
    }
    return controller.signal;
  }
}

export class AbortController {
  constructor() {
    this.signal = new AbortSignal();
  }
  abort(reason = new DOMException('This operation was aborted', 'AbortError')) {
    if (this.signal.aborted) return;
    this.signal.aborted = true;
    this.signal.reason = reason;
    this.signal.dispatchEvent(new Event('abort'));
  }
}
