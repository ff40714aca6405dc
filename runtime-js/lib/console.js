// `console`: Node's formatting (`util.format`, `util.inspect`) written straight to the
// standard streams, so output interleaves with process.stdout/stderr writes in order.
import { writeAll } from './process.js';
import { format, inspect } from './internal/inspect.js';
import { native } from './internal/native.js';

const nowMs = () => Number(native.hrtime()) / 1e6;

const util = { format, inspect };

export class Console {
  constructor(stdout, stderr) {
    if (stdout && typeof stdout === 'object' && !stdout.write && stdout.stdout) ({ stdout, stderr } = stdout);
    this._out = stdout ? (text) => stdout.write(text) : (text) => writeAll(1, text);
    this._err = stderr ? (text) => stderr.write(text) : stdout ? this._out : (text) => writeAll(2, text);
    this._indent = '';
    this._counts = new Map();
    this._timers = new Map();
    for (const name of Object.getOwnPropertyNames(Console.prototype)) {
      if (name !== 'constructor' && typeof this[name] === 'function') this[name] = this[name].bind(this);
    }
  }
  _print(write, args) {
    let text = util.format(...args);
    if (this._indent) text = text.split('\n').map((line) => this._indent + line).join('\n');
    write(`${text}\n`);
  }
  log(...args) { this._print(this._out, args); }
  info(...args) { this._print(this._out, args); }
  debug(...args) { this._print(this._out, args); }
  error(...args) { this._print(this._err, args); }
  warn(...args) { this._print(this._err, args); }
  dir(value, options) { this._print(this._out, [util.inspect(value, { customInspect: false, ...options })]); }
  dirxml(...args) { this.log(...args); }
  trace(...args) {
    const error = new Error(util.format(...args));
    error.name = 'Trace';
    this._print(this._err, [error.stack.replace(/^Error/, 'Trace')]);
  }
  assert(condition, ...args) {
    if (!condition) this._print(this._err, [args.length ? `Assertion failed: ${util.format(...args)}` : 'Assertion failed']);
  }
  count(label = 'default') {
    const count = (this._counts.get(label) || 0) + 1;
    this._counts.set(label, count);
    this.log(`${label}: ${count}`);
  }
  countReset(label = 'default') { this._counts.delete(label); }
  group(...args) {
    if (args.length) this.log(...args);
    this._indent += '  ';
  }
  groupCollapsed(...args) { this.group(...args); }
  groupEnd() { this._indent = this._indent.slice(2); }
  time(label = 'default') { this._timers.set(label, nowMs()); }
  timeLog(label = 'default', ...args) {
    const start = this._timers.get(label);
    if (start !== undefined) this.log(`${label}: ${formatMs(nowMs() - start)}`, ...args);
  }
  timeEnd(label = 'default') {
    this.timeLog(label);
    this._timers.delete(label);
  }
  table(data) {
    if (data === null || typeof data !== 'object') return this.log(data);
    const rows = Object.entries(data);
    const columns = [];
    for (const [, row] of rows) {
      if (row && typeof row === 'object') for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
    }
    const hasValues = rows.some(([, row]) => row === null || typeof row !== 'object');
    const header = ['(index)', ...columns, ...(hasValues ? ['Values'] : [])];
    const cell = (value) => (value === undefined ? '' : util.inspect(value, { maxArrayLength: 3, breakLength: Infinity, colors: false }));
    const table = rows.map(([key, row]) => [key, ...columns.map((column) => (row && typeof row === 'object' ? cell(row[column]) : '')),
      ...(hasValues ? [row !== null && typeof row === 'object' ? '' : cell(row)] : [])]);
    const widths = header.map((title, i) => Math.max(title.length, ...table.map((row) => String(row[i]).length)) + 2);
    // Cells left-aligned, one space either side (as Node 20 and later draw them).
    const pad = (text, width) => ` ${text}${' '.repeat(width - text.length - 1)}`;
    const line = (l, m, r) => l + widths.map((w) => '─'.repeat(w)).join(m) + r;
    const out = [line('┌', '┬', '┐'), `│${header.map((h, i) => pad(h, widths[i])).join('│')}│`, line('├', '┼', '┤')];
    for (const row of table) out.push(`│${row.map((c, i) => pad(String(c), widths[i])).join('│')}│`);
    out.push(line('└', '┴', '┘'));
    this._out(`${out.join('\n')}\n`);
  }
}

function formatMs(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(3)}s` : `${ms.toFixed(3)}ms`;
}

export const console = new Console();
console.Console = Console;
export default console;
