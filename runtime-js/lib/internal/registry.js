// The builtin modules by name, filled in by bootstrap.js: lets a module reach another lazily
// (loading `stream` only when a stream is made) without an import cycle.
export const registry = {
  /** @type {(name: string) => any} */
  require: null,
};
