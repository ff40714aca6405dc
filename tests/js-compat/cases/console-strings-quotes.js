console.log(['single\'quote', 'double"quote', 'both\'"', 'back`tick\'"']);
console.log({ s: 'line1\nline2' });
console.log(['tab\there', 'uni\u0001']);
console.log('%s', 'raw\ttab');
