// The runtime's start: globals, the builtin modules, the command line, and the hooks the runner
// (runtime-js/runner/node.c) calls: main, tick (the event loop), exit, uncaught, rejection,
// resolve and load (ES modules).
import './internal/globals.js'; // first: the bundled npm modules expect the globals as they load
import { native } from './internal/native.js';
import { registry } from './internal/registry.js';
import { unsupported, coded } from './internal/errors.js';
import process, { writeAll, exitStatus, NODE_VERSION, runTicks, startProcess } from './process.js';
import { startGlobals } from './internal/globals.js';
import * as timers from './timers.js';
import { Buffer } from 'buffer';

// Builtins: ours (talking to the kernel) and the npm packages bundled for the rest.
const FACTORIES = {
  assert: () => makeAssert(require_npm('assert')),
  'assert/strict': () => builtin('assert').strict,
  buffer: () => require_npm('buffer'),
  child_process: () => childProcess,
  console: () => require_ours('console'),
  constants: () => ({ ...require_ours('fs').constants, ...require_ours('os').constants.signals }),
  crypto: () => cryptoModule,
  events: () => require_npm('events'),
  fs: () => require_ours('fs'),
  http: () => httpModule,
  https: () => httpsModule(),
  tls: () => ({ connect: tlsConnect, TLSSocket: netModule.Socket }),
  net: () => netModule,
  'fs/promises': () => require_ours('fs').promises,
  module: () => require_ours('module'),
  os: () => require_ours('os'),
  path: () => require_ours('path'),
  'path/posix': () => require_ours('path'),
  perf_hooks: () => ({ performance: globalThis.performance }),
  process: () => process,
  querystring: () => querystringModule,
  stream: () => require_npm('stream'),
  'stream/promises': () => require_npm('stream').promises,
  'stream/consumers': () => streamConsumers,
  string_decoder: () => makeStringDecoder(require_npm('string_decoder')),
  timers: () => ({ ...timers, promises: timers.promises }),
  'timers/promises': () => timers.promises,
  tty: () => ({ isatty: (fd) => native.isatty(fd) }),
  url: () => makeUrl(require_npm('url'), (file) => path.resolve(file)),
  util: () => makeUtil(require_npm('util')),
  'util/types': () => builtin('util').types,
  worker_threads: () => ({ isMainThread: true, parentPort: null, workerData: null, threadId: 0 }),
};
const UNSUPPORTED = ['cluster', 'dgram', 'diagnostics_channel', 'dns', 'domain', 'http2', 'inspector',
  'readline', 'repl', 'trace_events', 'v8', 'vm', 'wasi', 'zlib', 'async_hooks', 'sqlite', 'test'];
for (const name of UNSUPPORTED) FACTORIES[name] ??= () => loadUnsupported(name);

function loadUnsupported(name) {
  throw unsupported(`the '${name}' module`);
}

import * as npm from './internal/npm.js';
function require_npm(name) {
  return npm.load(name);
}

import fsModule from './fs_module.js';
import consoleModule from './console.js';
import os from './os.js';
import path from './path.js';
import * as moduleSystem from './module.js';
import childProcess from './child_process.js';
import cryptoModule from './crypto.js';
import netModule from './net.js';
import httpModule, { fetch, httpsModule } from './http.js';
import { tlsConnect } from './net.js';
import * as io from './internal/io.js';
import { makeUtil } from './internal/util.js';
import { makeAssert, makeStringDecoder, makeUrl, streamConsumers } from './internal/npm_compat.js';
import querystringModule from './querystring.js';
import { inspect } from './internal/inspect.js';

const ours = {
  fs: () => fsModule,
  console: () => consoleModule,
  os: () => os,
  path: () => path,
  module: () => {
    const { Module } = moduleSystem;
    Module.builtinModules = Object.keys(FACTORIES);
    Module.createRequire = Module.createRequire.bind(Module);
    return Module;
  },
};
function require_ours(name) {
  return ours[name]();
}

const builtins = new Map();
function builtin(name) {
  if (!builtins.has(name)) builtins.set(name, FACTORIES[name]());
  return builtins.get(name);
}

// The VM's jsRuntime config, which the kernel gives every node process it starts (and which a
// program cannot choose for the node processes it starts); read at `start`.
function readJsRuntime() {
  const text = process.env.SECURE_EXEC_JS_RUNTIME;
  delete process.env.SECURE_EXEC_JS_RUNTIME;
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    return {};
  }
}
let platform = 'node';
// Builtins a program may require or import: every one (null), exactly those listed, or none
// on a platform other than node. The layer's own uses go around this (registry.require).
let allowedBuiltins = null;
function allowedBuiltin(name) {
  if (allowedBuiltins && !allowedBuiltins.has(name)) {
    throw coded(Error, 'ERR_ACCESS_DENIED', `the '${name}' module is not available in this VM (jsRuntime ${platform === 'node' ? 'allowedBuiltins' : `platform '${platform}'`})`);
  }
  return builtin(name);
}
registry.require = builtin;
moduleSystem.setBuiltins(Object.keys(FACTORIES), allowedBuiltin);
globalThis[Symbol.for('secure-exec.builtin')] = allowedBuiltin;

globalThis.console = consoleModule;
globalThis.crypto = cryptoModule.webcrypto;
globalThis.fetch = fetch;
// Standard streams, made when first used (loading `stream` costs start-up time otherwise).
function stdioStream(fd) {
  let made;
  return () => {
    if (made) return made;
    if (fd === 0) {
      const { Readable } = builtin('stream');
      made = new Readable({
        read(size) {
          setImmediate(() => {
            const chunk = Buffer.allocUnsafe(Math.max(size, 65536));
            const n = native.read(0, chunk, 0, chunk.length, -1);
            if (n < 0) this.destroy(coded(Error, 'EIO', `read from standard input failed (${n})`));
            else this.push(n > 0 ? chunk.subarray(0, n) : null);
          });
        },
      });
    } else {
      const { Writable } = builtin('stream');
      made = new Writable({
        write(chunk, encoding, callback) {
          try {
            writeAll(fd, typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk);
            callback();
          } catch (error) {
            callback(error);
          }
        },
      });
      made._type = 'pipe';
      made.columns = 80;
      made.rows = 24;
      made.getColorDepth = () => 1;
      made.hasColors = () => false;
    }
    made.fd = fd;
    // Node's streams for a pipe or file have no isTTY at all; a terminal's say true.
    if (native.isatty(fd)) made.isTTY = true;
    return made;
  };
}
for (const [name, fd] of [['stdin', 0], ['stdout', 1], ['stderr', 2]]) {
  const get = stdioStream(fd);
  Object.defineProperty(process, name, { configurable: true, enumerable: true, get });
}

// The command line.
const USAGE = `Usage: node [options] [ script.js ] [arguments]
       node -e "script" [arguments]

Options:
  -e, --eval script     evaluate script
  -p, --print script    evaluate script and print result
  -r, --require module  module to preload
  --input-type=module   evaluate --eval input as an ES module
  -v, --version         print Node.js version
  -h, --help            print this help
`;

const IGNORED_OPTION = /^--(no-warnings|no-deprecation|trace-warnings|enable-source-maps|experimental-[\w-]+|no-experimental-[\w-]+|max-old-space-size(=\d+)?|stack-size(=\d+)?|harmony[\w-]*|use-strict|preserve-symlinks|preserve-symlinks-main|title=.*|unhandled-rejections=.*)$/;

function parseCommandLine(argv) {
  const options = { eval: null, print: false, preload: [], inputType: 'commonjs', script: null, args: [], check: false };
  let i = 1;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') { i++; break; }
    if (!arg.startsWith('-') || arg === '-') break;
    const takes = () => {
      if (i + 1 >= argv.length) fail(`${arg} requires an argument`);
      return argv[++i];
    };
    if (arg === '-e' || arg === '--eval') options.eval = takes();
    else if (arg.startsWith('--eval=')) options.eval = arg.slice(7);
    else if (arg === '-p' || arg === '--print') { options.eval = takes(); options.print = true; }
    else if (arg === '-pe' || arg === '-ep') { options.eval = takes(); options.print = true; }
    else if (arg === '-r' || arg === '--require') options.preload.push(takes());
    else if (arg === '--input-type=module') options.inputType = 'module';
    else if (arg === '--input-type=commonjs') options.inputType = 'commonjs';
    else if (arg === '-c' || arg === '--check') options.check = true;
    else if (arg === '-v' || arg === '--version') { writeAll(1, `v${NODE_VERSION}\n`); native.exit(0); }
    else if (arg === '-h' || arg === '--help') { writeAll(1, USAGE); native.exit(0); }
    else if (arg === '-i' || arg === '--interactive') fail('the REPL is not supported by this runtime (secure-exec)');
    else if (IGNORED_OPTION.test(arg)) continue;
    else fail(`bad option: ${arg}`, 9);
  }
  if (options.eval === null && i < argv.length && argv[i] !== '-') options.script = argv[i++];
  else if (options.eval === null && argv[i] === '-') i++;
  options.args = argv.slice(i);
  return options;
}

function fail(message, status = 9) {
  writeAll(2, `${native.argv[0] || 'node'}: ${message}\n`);
  native.exit(status);
}

function readStdin() {
  const chunks = [];
  for (;;) {
    const chunk = Buffer.allocUnsafe(65536);
    const n = native.read(0, chunk, 0, chunk.length, -1);
    if (n <= 0) break;
    chunks.push(chunk.subarray(0, n));
  }
  return Buffer.concat(chunks).toString('utf8');
}

// The process's start: everything the layer takes from the process (its environment, clocks,
// random seed, the VM's jsRuntime config) is read here, after the layer has loaded and before
// the program runs. Nothing the layer does as it loads may depend on the process: a loaded
// layer is the same for every process.
function start() {
  startProcess();
  startGlobals();
  const jsRuntime = readJsRuntime();
  platform = jsRuntime.platform ?? 'node';
  allowedBuiltins = platform !== 'node' ? new Set()
    : Array.isArray(jsRuntime.allowedBuiltins) ? new Set(jsRuntime.allowedBuiltins.map((name) => name.replace(/^node:/, '')))
    : null;
  moduleSystem.setResolution(jsRuntime.moduleResolution ?? 'node');
  for (const name of PLATFORM_REMOVES[platform] ?? []) delete globalThis[name];
}

function main() {
  start();
  const options = parseCommandLine(native.argv);
  process.execArgv = [];
  for (const preload of options.preload) moduleSystem.Module._load(preload, null);
  let evaluation;
  if (options.eval !== null) {
    process.argv = [process.execPath, ...options.args];
    const value = moduleSystem.runEval(options.eval, options.inputType === 'module');
    if (options.print) consoleModule.log(value);
    evaluation = options.inputType === 'module' ? value : undefined;
  } else if (options.script !== null) {
    const file = path.resolve(process.cwd(), options.script);
    process.argv = [process.execPath, file, ...options.args];
    if (options.check) {
      native.compile(`(function(){${fsModule.readFileSync(file, 'utf8')}\n})`, file, false);
      return;
    }
    evaluation = moduleSystem.runMain(file);
  } else {
    process.argv = [process.execPath, ...options.args];
    const source = readStdin();
    evaluation = moduleSystem.runEval(source, options.inputType === 'module');
  }
  if (evaluation && typeof evaluation.then === 'function') {
    if (moduleSystem.settledOrThrow(evaluation) === 0) evaluation.then(null, uncaught);
  } else {
    // A CommonJS main's nextTick queue runs before its promise reactions (an ES module's after:
    // its body ran as a job).
    runTicks();
  }
}

// Unhandled rejections, reported after the microtasks that could still handle them have run.
const unhandled = new Map();
function rejection(promise, reason, handled) {
  if (handled) unhandled.delete(promise);
  else unhandled.set(promise, reason);
}

function reportRejections() {
  for (const [promise, reason] of unhandled) {
    unhandled.delete(promise);
    if (process.listenerCount('unhandledRejection') > 0) {
      process.emit('unhandledRejection', reason, promise);
      continue;
    }
    if (reason instanceof Error) uncaught(reason);
    else {
      const error = new Error(`This error originated either by throwing inside of an async function without a catch block, or by rejecting a promise which was not handled with .catch(). The promise rejected with the reason "${inspect(reason)}".`);
      error.code = 'ERR_UNHANDLED_REJECTION';
      error.name = 'UnhandledPromiseRejection';
      uncaught(error);
    }
  }
}

let beforeExitEmitted = false;
function tick() {
  try {
    return loopTurn();
  } finally {
    runTicks(); // the nextTick queue after each callback, before the promise reactions it queued
  }
}

function loopTurn() {
  reportRejections();
  const wait = timers.runOne();
  if (wait === 0) return 0;
  // Sockets: wait on them until the next timer is due (or without bound when none is).
  if (io.hasRefed()) {
    io.pollOnce(wait);
    return 0;
  }
  if (wait !== -1) return wait;
  // The loop is empty: 'beforeExit' may give it more work.
  if (process.listenerCount('beforeExit') > 0 && !beforeExitEmitted) {
    beforeExitEmitted = true;
    process.emit('beforeExit', exitStatus());
    beforeExitEmitted = false;
    return timers.runOne() === -1 && !timers.pendingImmediates() ? -1 : 0;
  }
  return -1;
}

function exit() {
  reportRejections();
  process.emit('exit', exitStatus());
  return exitStatus();
}

let reporting = false;
function uncaught(error) {
  if (!reporting && process.listenerCount('uncaughtException') > 0) {
    reporting = true;
    try {
      process.emit('uncaughtException', error, 'uncaughtException');
    } finally {
      reporting = false;
    }
    return;
  }
  let text;
  if (error instanceof Error) {
    const stack = typeof error.stack === 'string' ? error.stack : '';
    const head = `${error.name}: ${error.message}`;
    // The layer's own frames (below the program's) say nothing about the program.
    const frames = stack.split('\n').filter((line) => !/\((node:internal\/|native\))/.test(line)).join('\n');
    text = frames.startsWith(head) || frames.startsWith(error.name) ? frames : `${head}\n${frames}`;
    const extra = Object.keys(error).filter((key) => key !== 'stack' && key !== 'message');
    if (extra.length > 0) {
      const fields = {};
      for (const key of extra) fields[key] = error[key];
      text = `${text.replace(/\n$/, '')} ${inspect(fields)}`;
    }
  } else text = `Uncaught ${inspect(error)}`;
  writeAll(2, `${text.replace(/\n$/, '')}\n\nNode.js v${NODE_VERSION}\n`);
  process.exitCode = 1;
  try {
    process.emit('exit', 1);
  } catch {}
  native.exit(1);
}

// Globals a platform other than node does not have (jsRuntime.platform): browser keeps the web
// platform's, neutral only console, timers and microtasks, bare only ECMAScript's own.
const BROWSER_REMOVES = ['process', 'Buffer', 'global', 'setImmediate', 'clearImmediate'];
const NEUTRAL_REMOVES = [...BROWSER_REMOVES, 'fetch', 'crypto', 'TextEncoder', 'TextDecoder', 'AbortController',
  'AbortSignal', 'EventTarget', 'Event', 'DOMException', 'performance', 'structuredClone', 'URL', 'URLSearchParams'];
const PLATFORM_REMOVES = {
  browser: BROWSER_REMOVES,
  neutral: NEUTRAL_REMOVES,
  bare: [...NEUTRAL_REMOVES, 'console', 'setTimeout', 'setInterval', 'clearTimeout', 'clearInterval', 'queueMicrotask'],
};

native.hooks = {
  main,
  tick,
  exit,
  uncaught,
  rejection,
  resolve: moduleSystem.resolveImport,
  load: moduleSystem.loadImport,
};
