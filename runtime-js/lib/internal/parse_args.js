// util.parseArgs: Node's command-line option parser (long and short options, short groups,
// `--name=value`, `--`, `multiple`, `default`, `strict`, `allowPositionals`, `allowNegative`,
// `tokens`), with Node's error codes.
import { coded } from './errors.js';
import process from '../process.js';

function optionDisplay(name, config) {
  const short = config && config.short ? `-${config.short}, ` : '';
  const value = config && config.type === 'string' ? ' <value>' : '';
  return `${short}--${name}${value}`;
}

export function parseArgs(config = {}) {
  const args = config.args ?? process.argv.slice(process.argv.length > 1 ? 2 : 1);
  const strict = config.strict ?? true;
  const allowPositionals = config.allowPositionals ?? !strict;
  const allowNegative = config.allowNegative ?? false;
  const returnTokens = config.tokens ?? false;
  const options = config.options ?? {};
  if (!Array.isArray(args)) throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "args" property must be an instance of Array.');
  for (const [name, option] of Object.entries(options)) {
    if (!option || (option.type !== 'string' && option.type !== 'boolean')) {
      throw coded(TypeError, 'ERR_INVALID_ARG_VALUE', `The property 'options.${name}.type' must be one of: 'string', 'boolean'.`);
    }
    if (option.short !== undefined && (typeof option.short !== 'string' || option.short.length !== 1)) {
      throw coded(TypeError, 'ERR_INVALID_ARG_VALUE', `The property 'options.${name}.short' must be a single character.`);
    }
  }
  const longForShort = (short) => {
    for (const [name, option] of Object.entries(options)) if (option.short === short) return name;
    return short;
  };
  const tokens = [];
  const remaining = [...args];
  let index = -1;
  let groupCount = 0;
  while (remaining.length > 0) {
    const arg = remaining.shift();
    const next = remaining[0];
    if (groupCount > 0) groupCount--;
    else index++;
    if (arg === '--') {
      tokens.push({ kind: 'option-terminator', index });
      for (const rest of remaining) tokens.push({ kind: 'positional', index: ++index, value: rest });
      break;
    }
    if (arg.length === 2 && arg[0] === '-' && arg[1] !== '-') {
      const name = longForShort(arg[1]);
      let value;
      let inlineValue;
      if (options[name]?.type === 'string' && next !== undefined && groupCount === 0) {
        value = remaining.shift();
        inlineValue = false;
      }
      tokens.push({ kind: 'option', name, rawName: arg, index, value, inlineValue });
      if (value !== undefined) index++;
      continue;
    }
    if (arg.length > 2 && arg[0] === '-' && arg[1] !== '-') {
      const first = longForShort(arg[1]);
      if (options[first]?.type === 'string') {
        tokens.push({ kind: 'option', name: first, rawName: `-${arg[1]}`, index, value: arg.slice(2), inlineValue: true });
        continue;
      }
      const expanded = [];
      for (let i = 1; i < arg.length; i++) {
        const short = arg[i];
        const name = longForShort(short);
        if (options[name]?.type !== 'string' || i === arg.length - 1) expanded.push(`-${short}`);
        else {
          expanded.push(`-${arg.slice(i)}`);
          break;
        }
      }
      remaining.unshift(...expanded);
      groupCount = expanded.length;
      continue;
    }
    if (arg.startsWith('--') && arg.length > 2) {
      const eq = arg.indexOf('=');
      if (eq !== -1) {
        tokens.push({ kind: 'option', name: arg.slice(2, eq), rawName: arg.slice(0, eq), index, value: arg.slice(eq + 1), inlineValue: true });
        continue;
      }
      const name = arg.slice(2);
      let value;
      let inlineValue;
      if (options[name]?.type === 'string' && next !== undefined) {
        value = remaining.shift();
        inlineValue = false;
      }
      tokens.push({ kind: 'option', name, rawName: arg, index, value, inlineValue });
      if (value !== undefined) index++;
      continue;
    }
    tokens.push({ kind: 'positional', index, value: arg });
  }

  const values = { __proto__: null };
  const positionals = [];
  for (const token of tokens) {
    if (token.kind === 'positional') {
      if (!allowPositionals) {
        throw coded(TypeError, 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL', `Unexpected argument '${token.value}'. This command does not take positional arguments`);
      }
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    let name = token.name;
    let value = token.value;
    let option = options[name];
    if (allowNegative && option === undefined && name.startsWith('no-') && options[name.slice(3)]?.type === 'boolean' && value === undefined) {
      name = name.slice(3);
      option = options[name];
      value = false;
    }
    if (strict) {
      if (option === undefined) {
        const unknown = token.rawName.startsWith('--') ? `'${token.rawName}'` : `'${token.rawName}'`;
        const hint = allowPositionals && !token.rawName.startsWith('--') ? '' : allowPositionals ? `. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- ${token.rawName}` : '';
        throw coded(TypeError, 'ERR_PARSE_ARGS_UNKNOWN_OPTION', `Unknown option ${unknown}${hint}`);
      }
      if (option.type === 'string' && typeof value !== 'string') {
        throw coded(TypeError, 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE', `Option '${optionDisplay(name, option)}' argument missing`);
      }
      if (option.type === 'boolean' && token.value !== undefined) {
        throw coded(TypeError, 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE', `Option '${optionDisplay(name, option)}' does not take an argument`);
      }
    }
    const stored = value === undefined ? true : value;
    if (option && option.multiple) {
      values[name] ??= [];
      values[name].push(stored);
    } else {
      values[name] = stored;
    }
  }
  for (const [name, option] of Object.entries(options)) {
    if (option.default !== undefined && values[name] === undefined) values[name] = option.default;
  }
  const result = { values, positionals };
  if (returnTokens) result.tokens = tokens;
  return result;
}
