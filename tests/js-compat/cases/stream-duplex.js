const { Duplex } = require('stream');
const d = new Duplex({
  read() {
    this.push('from-read');
    this.push(null);
  },
  write(chunk, enc, cb) {
    console.log('written', chunk.toString());
    cb();
  },
});
d.on('data', (c) => console.log('data', c.toString()));
d.write('into-duplex');
d.end();
d.on('finish', () => console.log('finish'));
d.on('end', () => console.log('end'));
