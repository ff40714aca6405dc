// The runner's native calls (runtime-js/runner/node.c), taken off the global object before any
// user code runs: only this layer reaches them.
export const native = globalThis.__native;
delete globalThis.__native;
