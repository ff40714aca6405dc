console.group('outer');
console.log({ a: 1, b: { c: [1, 2, 3] } });
console.log('multi\nline');
console.group('inner');
console.log([{ x: 1 }, { y: 2 }]);
console.groupEnd();
console.groupEnd();
console.log('%s=%o', 'k', 'v');
console.info('%d%%', 50);
