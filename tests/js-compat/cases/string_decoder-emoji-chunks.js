const { StringDecoder } = require('string_decoder');
const text = 'aé😀中';
const bytes = Buffer.from(text);
for (const size of [1, 2, 3]) {
  const d = new StringDecoder('utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i += size) out += d.write(bytes.subarray(i, i + size));
  out += d.end();
  console.log(size, out === text, out.length);
}
