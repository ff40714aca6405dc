const { Readable } = require('stream');
const r = new Readable({ read() {} });
r.push('abc');
r.push('def');
r.push(null);
r.on('readable', function () {
  let chunk;
  while ((chunk = this.read(2)) !== null) console.log('read', chunk.toString());
});
r.on('end', () => console.log('ended'));
