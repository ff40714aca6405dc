const s = 'Ωmega ✓';
for (const enc of ['utf8', 'utf16le', 'latin1', 'ascii', 'hex', 'base64', 'ucs2', 'binary']) {
  const b = Buffer.from(s, enc === 'hex' || enc === 'base64' ? 'utf8' : enc);
  console.log(enc, b.length, b.toString(enc));
}
