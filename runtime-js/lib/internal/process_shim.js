// What bundled npm packages get for `require('process')`: the runtime's own process.
module.exports = globalThis.process;
