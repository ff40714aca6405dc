const b = Buffer.from('héllo wörld');
console.log(b.length, b.toString());
console.log(b.toString('hex'));
console.log(b.toString('base64'));
console.log(Buffer.from('aGVsbG8=', 'base64').toString());
console.log(Buffer.from('68656c6c6f', 'hex').toString('utf8'));
console.log(Buffer.from('caf\u00e9', 'latin1'));
console.log(Buffer.from('caf\u00e9', 'latin1').toString('latin1'));
console.log(Buffer.from('hi', 'utf16le'));
