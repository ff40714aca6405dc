process.stdout.write('a');
process.stdout.write('b\n');
const ok = process.stdout.write(Buffer.from('buffer line\n'));
console.log(typeof ok);
process.stdout.write('with callback\n', () => console.log('written cb'));
console.log(typeof process.stdout.on, typeof process.stderr.write);
