// Node's util.format: printf-style directives in a leading string, then the other arguments
// joined by spaces, strings as they are and everything else through util.inspect. (The bundled
// npm `util` inspects strings among the rest, which Node does not.)
export function makeFormat(inspect) {
  return function format(...args) {
    let out = '';
    let next = 0;
    if (typeof args[0] === 'string') {
      const template = args[0];
      next = 1;
      let last = 0;
      for (let i = 0; i < template.length - 1; i++) {
        if (template.charCodeAt(i) !== 37) continue; // '%'
        const directive = template[i + 1];
        if (directive === '%') {
          out += template.slice(last, i) + '%';
          last = i + 2;
          i++;
          continue;
        }
        if (next >= args.length || !'sdifjoOc'.includes(directive)) continue;
        const arg = args[next++];
        let text;
        switch (directive) {
          case 's':
            text = typeof arg === 'string' ? arg
              : typeof arg === 'bigint' ? `${arg}n`
              : arg !== null && typeof arg === 'object' ? inspect(arg, { depth: 0 })
              : String(arg);
            break;
          case 'd':
            text = typeof arg === 'bigint' ? `${arg}n` : typeof arg === 'symbol' ? 'NaN' : String(Number(arg));
            break;
          case 'i':
            text = typeof arg === 'bigint' ? `${arg}n` : typeof arg === 'symbol' ? 'NaN' : String(parseInt(arg, 10));
            break;
          case 'f':
            text = typeof arg === 'symbol' ? 'NaN' : String(parseFloat(arg));
            break;
          case 'j':
            try {
              text = JSON.stringify(arg);
            } catch {
              text = '[Circular]';
            }
            break;
          case 'o':
            text = inspect(arg, { showHidden: true, depth: 4 });
            break;
          case 'O':
            text = inspect(arg);
            break;
          default: // 'c': CSS, ignored
            text = '';
        }
        out += template.slice(last, i) + text;
        last = i + 2;
        i++;
      }
      out += template.slice(last);
    }
    for (; next < args.length; next++) {
      const arg = args[next];
      if (out.length > 0 || next > 0) out += ' ';
      out += typeof arg === 'string' ? arg : inspect(arg);
    }
    return out;
  };
}
