const { types } = require('util');
console.log(types.isBoxedPrimitive(Object(1)), types.isBoxedPrimitive(1));
console.log(types.isArgumentsObject((function () { return arguments; })()));
console.log(types.isDataView(new DataView(new ArrayBuffer(1))), types.isSetIterator(new Set().values()));
console.log(types.isMapIterator(new Map().keys()), types.isWeakMap(new WeakMap()));
console.log(types.isAnyArrayBuffer(new ArrayBuffer(1)), types.isBigInt64Array(new BigInt64Array(1)));
console.log(types.isGeneratorObject((function* () {})()), types.isSymbolObject(Object(Symbol())));
