const bytes = new Uint8Array([0x68, 0x00, 0x69, 0x00]);
console.log(new TextDecoder('utf-16le').decode(bytes));
console.log(new TextDecoder('latin1').decode(new Uint8Array([0xe9, 0x41])), new TextDecoder('latin1').encoding);
console.log(new TextDecoder('UTF8').encoding, new TextDecoder('utf-8', { fatal: true }).fatal);
try { new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0xff])); } catch (e) { console.log(e.name, e.code); }
console.log(new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])));
console.log(new TextEncoder().encodeInto('héllo', new Uint8Array(3)));
try { new TextDecoder('no-such-encoding'); } catch (e) { console.log(e.name, e.code); }
