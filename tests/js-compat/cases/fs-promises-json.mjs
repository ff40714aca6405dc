import fs from 'node:fs/promises';
const file = '/tmp/jscompat-work/fs-promises-json.json';
const data = { name: 'x', list: [1, 2, 3], nested: { ok: true } };
await fs.writeFile(file, JSON.stringify(data, null, 2));
const text = await fs.readFile(file, { encoding: 'utf8' });
console.log(text.split('\n').length);
const back = JSON.parse(text);
console.log(back.list.reduce((a, b) => a + b), back.nested.ok);
await fs.unlink(file);
