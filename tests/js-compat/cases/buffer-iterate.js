const b = Buffer.from('hey');
console.log([...b]);
console.log([...b.keys()], [...b.entries()].map((e) => e.join(':')).join(' '));
for (const byte of b.values()) process.stdout.write(byte + ' ');
console.log();
console.log(Array.from(b.map((x) => x + 1)));
console.log(b instanceof Uint8Array);
