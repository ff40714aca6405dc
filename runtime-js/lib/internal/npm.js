// The builtins implemented by well-kept npm packages. `buffer` and `events` are in the start-up
// bundle (the process object and the Buffer global need them); the others are bundled on their
// own (runtime-js/deps, by scripts/build-node.sh), embedded as source text, and parsed only when
// first required, so a program that never uses them never pays for parsing them. What they
// require of each other and of Node's builtins resolves to this runtime's builtins.
import { native } from './native.js';
import { registry } from './registry.js';
import process from '../process.js';
import { Buffer } from 'buffer';

const CORE = {
  buffer: () => require('buffer/'),
  events: () => require('events/'),
};

function loadDependency(name) {
  const source = native.dependency(name);
  if (typeof source !== 'string') throw new Error(`the bundled '${name}' module is missing from this build`);
  // `process` and `Buffer` are given, not taken from the global object, which a VM's
  // jsRuntime.platform may have stripped of them.
  const factory = native.compile(`(function (module, exports, require, process, Buffer) {${source}\n})`, `node:internal/deps/${name}`, false);
  const module = { exports: {} };
  const requireBuiltin = (request) => registry.require(String(request).replace(/^node:/, '').replace(/\/$/, ''));
  factory.call(module.exports, module, module.exports, requireBuiltin, process, Buffer);
  return module.exports;
}

export function load(name) {
  return (CORE[name] ?? (() => loadDependency(name)))();
}
