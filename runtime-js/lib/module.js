// Modules: CommonJS `require` with Node's resolution over the VM's files (relative paths,
// `node_modules` up the tree, `package.json` `main` and `exports`), and the hooks through which
// the runner resolves and loads ES modules (`import`), the same resolution with the `import`
// condition. Builtins are found by name, with or without `node:`.
import { native } from './internal/native.js';
import { coded } from './internal/errors.js';
import * as path from './path.js';
import process from './process.js';
import { registry } from './internal/registry.js';

const BUILTIN_PREFIX = 'node:';
let builtinLoader = null; // (name) => exports | undefined
let builtinNames = [];
// jsRuntime.moduleResolution: 'node' (node_modules and package.json), 'relative' (relative and
// absolute paths only), 'none' (no file is loaded as a module).
let resolution = 'node';

export function setResolution(mode) {
  resolution = mode;
}

export function setBuiltins(names, load) {
  builtinNames = names;
  builtinLoader = load;
}

function builtinName(request) {
  const name = request.startsWith(BUILTIN_PREFIX) ? request.slice(BUILTIN_PREFIX.length) : request;
  return builtinNames.includes(name) ? name : null;
}

function statKind(file) {
  const stat = native.stat(file, true);
  if (!Array.isArray(stat)) return 0;
  const type = stat[2] & 0o170000;
  return type === 0o40000 ? 2 : 1;
}

function readText(file) {
  // The layer's own read: not subject to jsRuntime.allowedBuiltins.
  return registry.require('fs').readFileSync(file, 'utf8');
}

const packageCache = new Map();
function readPackage(dir) {
  if (packageCache.has(dir)) return packageCache.get(dir);
  let value = null;
  const file = `${dir}/package.json`;
  if (statKind(file) === 1) {
    try {
      value = JSON.parse(readText(file));
    } catch (error) {
      error.message = `Error parsing ${file}: ${error.message}`;
      throw error;
    }
  }
  packageCache.set(dir, value);
  return value;
}

/** The nearest package.json's scope above `file`: { dir, json } or null. */
function packageScope(file) {
  let dir = path.dirname(file);
  for (;;) {
    if (path.basename(dir) === 'node_modules') return null;
    const json = readPackage(dir);
    if (json) return { dir, json };
    const parent = path.dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

const EXTENSIONS = ['.js', '.json', '.cjs', '.mjs', '.node'];

function tryFile(file) {
  return statKind(file) === 1 ? file : null;
}

function tryExtensions(file) {
  for (const extension of EXTENSIONS) {
    const found = tryFile(file + extension);
    if (found) return found;
  }
  return null;
}

function tryDirectory(dir, conditions) {
  const json = readPackage(dir);
  if (json && typeof json.main === 'string' && json.main) {
    const main = path.resolve(dir, json.main);
    const found = tryFile(main) || tryExtensions(main) || tryIndex(main);
    if (found) return found;
  }
  return tryIndex(dir);
}

function tryIndex(dir) {
  return tryExtensions(`${dir}/index`);
}

function resolveAsFile(file, conditions) {
  return tryFile(file) || tryExtensions(file) || (statKind(file) === 2 ? tryDirectory(file, conditions) : null);
}

function matchConditions(target, conditions) {
  if (typeof target === 'string') return target;
  if (Array.isArray(target)) {
    for (const item of target) {
      const found = matchConditions(item, conditions);
      if (found) return found;
    }
    return null;
  }
  if (target && typeof target === 'object') {
    for (const [key, value] of Object.entries(target)) {
      if (key === 'default' || conditions.includes(key)) {
        const found = matchConditions(value, conditions);
        if (found) return found;
      }
    }
  }
  return null;
}

/** `exports` of a package for `subpath` ('.' or './x'), or null when it does not export it. */
function resolveExports(dir, exports, subpath, conditions) {
  const isConditionMap = exports && typeof exports === 'object' && !Array.isArray(exports) &&
    Object.keys(exports).every((key) => !key.startsWith('.'));
  const map = typeof exports === 'string' || Array.isArray(exports) || isConditionMap ? { '.': exports } : exports;
  if (Object.prototype.hasOwnProperty.call(map, subpath)) {
    const target = matchConditions(map[subpath], conditions);
    return target ? path.resolve(dir, target) : null;
  }
  for (const [key, value] of Object.entries(map)) {
    const star = key.indexOf('*');
    if (star < 0) {
      if (key.endsWith('/') && subpath.startsWith(key)) {
        const target = matchConditions(value, conditions);
        if (target) return path.resolve(dir, target + subpath.slice(key.length));
      }
      continue;
    }
    const prefix = key.slice(0, star), suffix = key.slice(star + 1);
    if (subpath.startsWith(prefix) && subpath.endsWith(suffix) && subpath.length >= key.length - 1) {
      const middle = subpath.slice(prefix.length, subpath.length - suffix.length);
      const target = matchConditions(value, conditions);
      if (target) return path.resolve(dir, target.split('*').join(middle));
    }
  }
  return undefined;
}

function notFound(request, from) {
  const error = new Error(`Cannot find module '${request}'${from ? `\nRequire stack:\n- ${from}` : ''}`);
  error.code = 'MODULE_NOT_FOUND';
  error.requireStack = from ? [from] : [];
  return error;
}

function resolvePackage(request, fromDir, conditions) {
  const parts = request.split('/');
  const nameLength = request.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameLength).join('/');
  const subpath = parts.length > nameLength ? `./${parts.slice(nameLength).join('/')}` : '.';
  let dir = fromDir;
  for (;;) {
    if (path.basename(dir) !== 'node_modules') {
      const packageDir = `${dir === '/' ? '' : dir}/node_modules/${name}`;
      if (statKind(packageDir) === 2) {
        const json = readPackage(packageDir);
        if (json && json.exports !== undefined && json.exports !== null) {
          const target = resolveExports(packageDir, json.exports, subpath, conditions);
          if (target === null || target === undefined) {
            const error = new Error(`Package subpath '${subpath}' is not defined by "exports" in ${packageDir}/package.json`);
            error.code = 'ERR_PACKAGE_PATH_NOT_EXPORTED';
            throw error;
          }
          const found = tryFile(target);
          if (found) return found;
        } else {
          const found = resolveAsFile(subpath === '.' ? packageDir : `${packageDir}/${subpath.slice(2)}`, conditions);
          if (found) return found;
        }
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** Resolves `request` from the directory `fromDir`: a builtin's `node:` name, or a file. */
export function resolve(request, fromDir, conditions, fromFile) {
  const builtin = builtinName(request);
  if (builtin) return BUILTIN_PREFIX + builtin;
  if (request.startsWith(BUILTIN_PREFIX)) {
    throw coded(Error, 'ERR_UNKNOWN_BUILTIN_MODULE', `No such built-in module: ${request}`);
  }
  if (request.startsWith('file://')) request = decodeURIComponent(request.slice(7));
  const relative = request.startsWith('./') || request.startsWith('../') || request.startsWith('/') || request === '.' || request === '..';
  if (resolution === 'none' || (resolution === 'relative' && !relative)) {
    const error = coded(Error, 'ERR_ACCESS_DENIED', `Cannot load module '${request}': this VM's jsRuntime.moduleResolution is '${resolution}'`);
    throw error;
  }
  let found = null;
  if (request.startsWith('./') || request.startsWith('../') || request.startsWith('/') || request === '.' || request === '..') {
    found = resolveAsFile(path.resolve(fromDir, request), conditions);
  } else if (request.startsWith('#')) {
    const scope = packageScope(`${fromDir}/x`);
    const target = scope && scope.json.imports && matchConditions(scope.json.imports[request], conditions);
    if (target) found = target.startsWith('.') ? resolveAsFile(path.resolve(scope.dir, target), conditions) : resolve(target, scope.dir, conditions);
  } else found = resolvePackage(request, fromDir, conditions);
  if (!found) throw notFound(request, fromFile);
  return found;
}

/** Whether `file` is an ES module: `.mjs`, or `.js` under a package.json of `"type": "module"`. */
export function isModuleFile(file) {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs') || file.endsWith('.json')) return false;
  const scope = packageScope(file);
  return Boolean(scope && scope.json.type === 'module');
}

const REQUIRE_CONDITIONS = ['require', 'node', 'node-addons'];
const IMPORT_CONDITIONS = ['import', 'node', 'node-addons'];

export class Module {
  constructor(id = '', parent = null) {
    this.id = id;
    this.filename = id;
    this.path = path.dirname(id);
    this.exports = {};
    this.parent = parent;
    this.loaded = false;
    this.children = [];
    this.paths = nodeModulePaths(this.path);
    if (parent) parent.children.push(this);
  }

  require(request) {
    if (typeof request !== 'string') {
      throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "id" argument must be of type string');
    }
    return Module._load(request, this);
  }

  _compile(source, filename) {
    const wrapped = `(function (exports, require, module, __filename, __dirname) { ${stripShebang(source)}\n})`;
    const compiled = native.compile(wrapped, filename, false);
    const require = makeRequire(this);
    return compiled.call(this.exports, this.exports, require, this, filename, path.dirname(filename));
  }

  static _load(request, parent) {
    const fromDir = parent ? parent.path : process.cwd();
    const resolved = resolve(request, fromDir, REQUIRE_CONDITIONS, parent && parent.filename);
    if (resolved.startsWith(BUILTIN_PREFIX)) return builtinLoader(resolved.slice(BUILTIN_PREFIX.length));
    const cached = Module._cache[resolved];
    if (cached) return cached.exports;
    const module = new Module(resolved, parent);
    Module._cache[resolved] = module;
    let ok = false;
    try {
      loadFile(module, resolved);
      ok = true;
    } finally {
      if (!ok) delete Module._cache[resolved];
    }
    module.loaded = true;
    return module.exports;
  }

  static createRequire(filename) {
    const file = String(filename).startsWith('file://') ? decodeURIComponent(String(filename).slice(7)) : String(filename);
    return makeRequire(new Module(file.endsWith('/') ? `${file}index.js` : file, null));
  }

  static isBuiltin(name) {
    return builtinName(name) !== null;
  }
}
Module._cache = Object.create(null);
Module._extensions = { '.js': true, '.json': true, '.cjs': true, '.mjs': true };
Module.Module = Module;

function nodeModulePaths(dir) {
  const paths = [];
  for (let current = dir; ; current = path.dirname(current)) {
    if (path.basename(current) !== 'node_modules') paths.push(`${current === '/' ? '' : current}/node_modules`);
    if (current === '/' || current === '.' || current === '') break;
  }
  return paths;
}

function stripShebang(source) {
  return source.startsWith('#!') ? `//${source.slice(2)}` : source;
}

function loadFile(module, file) {
  if (file.endsWith('.json')) {
    const text = readText(file);
    try {
      module.exports = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
    } catch (error) {
      error.message = `${file}: ${error.message}`;
      throw error;
    }
    return;
  }
  if (file.endsWith('.node')) {
    throw coded(Error, 'ERR_DLOPEN_FAILED', `${file}: native addons cannot run in this runtime (secure-exec)`);
  }
  if (isModuleFile(file)) {
    module.exports = requireModule(file);
    return;
  }
  module._compile(readText(file), file);
}

// require() of an ES module (as Node 22 allows for modules without top-level await): the module
// graph is evaluated at once and its namespace returned.
export function requireModule(file) {
  const slot = Symbol.for('secure-exec.namespace');
  const source = `import * as namespace from ${JSON.stringify(file)}; globalThis[Symbol.for('secure-exec.namespace')](namespace);`;
  let namespace = null;
  globalThis[slot] = (value) => { namespace = value; };
  let evaluation;
  try {
    evaluation = native.compile(source, `${file}?require`, true);
  } finally {
    delete globalThis[slot];
  }
  settledOrThrow(evaluation);
  if (namespace === null) {
    throw coded(Error, 'ERR_REQUIRE_ASYNC_MODULE', `require() cannot be used on an ES module with top-level await: ${file}`);
  }
  return namespace;
}

/** A module evaluation's promise: throws its error now if it was rejected (and marks it handled). */
export function settledOrThrow(evaluation) {
  const [state, result] = native.promiseState(evaluation);
  if (state === 2) {
    evaluation.then(null, () => {});
    throw result;
  }
  return state;
}

export function makeRequire(module) {
  const require = (request) => module.require(request);
  require.resolve = (request, options) => {
    const fromDir = options && options.paths && options.paths[0] ? options.paths[0] : module.path;
    return resolve(request, fromDir, REQUIRE_CONDITIONS, module.filename).replace(/^node:(?=.)/, (prefix) => (request.startsWith('node:') ? prefix : ''));
  };
  require.resolve.paths = (request) => (builtinName(request) ? null : nodeModulePaths(module.path));
  require.cache = Module._cache;
  require.main = mainModule;
  require.extensions = Module._extensions;
  return require;
}

let mainModule;

/** Runs `file` as the main program (CommonJS or ES module). */
export function runMain(file) {
  if (isModuleFile(file)) {
    return native.compile(readText(file), file, true);
  }
  const module = new Module(file, null);
  module.id = '.';
  mainModule = module;
  process.mainModule = module;
  Module._cache[file] = module;
  const source = readText(file);
  if (!file.endsWith('.cjs') && looksLikeModule(source)) {
    delete Module._cache[file];
    return native.compile(source, file, true);
  }
  module._compile(source, file);
  module.loaded = true;
  return undefined;
}

/** Node's syntax detection for an ambiguous `.js` file: top-level `import`/`export`. */
export function looksLikeModule(source) {
  return /^\s*(import\s*[\w*{'"]|export\s+(default|const|let|var|function|class|async|\{|\*))/m.test(source) &&
    !/\brequire\s*\(|\bmodule\.exports\b|\bexports\.\w+\s*=/.test(source);
}

/** Runs source given on the command line (`-e`) as CommonJS in the current directory. */
export function runEval(source, asModule) {
  const cwd = process.cwd();
  const file = `${cwd === '/' ? '' : cwd}/[eval]`;
  if (asModule || looksLikeModule(source)) return native.compile(source, `${cwd === '/' ? '' : cwd}/[eval1]`, true);
  const module = new Module(file, null);
  module.id = '[eval]';
  module.filename = file;
  module.paths = nodeModulePaths(cwd);
  mainModule = module;
  const require = makeRequire(module);
  const previous = { require: globalThis.require, module: globalThis.module, exports: globalThis.exports };
  globalThis.require = require;
  globalThis.module = module;
  globalThis.exports = module.exports;
  globalThis.__filename = '[eval]';
  globalThis.__dirname = '.';
  return native.compile(source, '[eval]', false);
}

// The runner's ES module hooks.
export function resolveImport(base, request) {
  const builtin = builtinName(request);
  if (builtin) return BUILTIN_PREFIX + builtin;
  const fromDir = base.startsWith('/') ? path.dirname(base.replace(/\?require$/, '')) : process.cwd();
  return resolve(request, fromDir, IMPORT_CONDITIONS, base);
}

export function loadImport(name) {
  if (name.startsWith(BUILTIN_PREFIX)) {
    const exports = builtinLoader(name.slice(BUILTIN_PREFIX.length));
    return reexport(`globalThis[Symbol.for('secure-exec.builtin')](${JSON.stringify(name.slice(BUILTIN_PREFIX.length))})`, exports);
  }
  if (name.endsWith('.json')) return `export default ${readText(name)};`;
  if (isModuleFile(name) || name.endsWith('.mjs')) return readText(name);
  const source = readText(name);
  if (!name.endsWith('.cjs') && looksLikeModule(source)) return source;
  // A CommonJS file imported: run through require, its exports the default export and, where
  // they are identifiers, named exports.
  const exports = Module._load(name, null);
  return reexport(`globalThis[Symbol.for('secure-exec.require')](${JSON.stringify(name)})`, exports);
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const RESERVED = new Set(['default', 'class', 'function', 'var', 'let', 'const', 'new', 'delete', 'in', 'if', 'else',
  'for', 'while', 'do', 'return', 'import', 'export', 'this', 'super', 'typeof', 'instanceof', 'void', 'with',
  'yield', 'await', 'enum', 'null', 'true', 'false', 'try', 'catch', 'finally', 'throw', 'switch', 'case', 'break',
  'continue', 'debugger', 'extends', 'static']);

function reexport(expression, exports) {
  // A class's static methods (Module.createRequire) are not enumerable: a function exports
  // its own names, an object its enumerable ones.
  const FUNCTION_OWN = new Set(['length', 'name', 'prototype', 'caller', 'arguments']);
  const keys = typeof exports === 'function'
    ? Object.getOwnPropertyNames(exports).filter((key) => !FUNCTION_OWN.has(key))
    : exports && typeof exports === 'object' ? Object.keys(exports) : [];
  const names = keys.filter((key) => IDENTIFIER.test(key) && !RESERVED.has(key));
  let source = `const m = ${expression};\nexport default m;\n`;
  if (names.length > 0) source += `export const { ${names.join(', ')} } = m;\n`;
  return source;
}

globalThis[Symbol.for('secure-exec.require')] = (file) => Module._load(file, null);
