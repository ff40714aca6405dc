const { parseArgs } = require('util');
const { values, positionals } = parseArgs({
  args: ['-v', '--name', 'Ann', '--count=3', 'file.txt', '-abc'],
  options: {
    verbose: { type: 'boolean', short: 'v' },
    name: { type: 'string' },
    count: { type: 'string' },
    a: { type: 'boolean' }, b: { type: 'boolean' }, c: { type: 'boolean' },
    level: { type: 'string', default: 'info' },
  },
  allowPositionals: true,
});
console.log(JSON.stringify(values), positionals);
const multi = parseArgs({ args: ['-i', 'x', '-i', 'y', '--', '--not-an-option'], options: { include: { type: 'string', short: 'i', multiple: true } }, allowPositionals: true });
console.log(multi.values.include, multi.positionals);
try { parseArgs({ args: ['--unknown'], options: {} }); } catch (e) { console.log(e.code); }
try { parseArgs({ args: ['pos'], options: {} }); } catch (e) { console.log(e.code); }
try { parseArgs({ args: ['--name'], options: { name: { type: 'string' } } }); } catch (e) { console.log(e.code); }
const loose = parseArgs({ args: ['--x', '--y=2', 'p'], strict: false });
console.log(JSON.stringify(loose.values), loose.positionals);
