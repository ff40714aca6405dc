const b = Buffer.from([1, 2, 3]);
const json = JSON.stringify(b);
console.log(json);
const parsed = JSON.parse(json);
console.log(parsed.type, Buffer.from(parsed.data).equals(b));
console.log(JSON.stringify({ payload: Buffer.from('hi') }));
console.log(b.toJSON());
