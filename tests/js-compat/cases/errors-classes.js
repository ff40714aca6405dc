const errors = [new Error('e'), new TypeError('t'), new RangeError('r'), new SyntaxError('s'), new ReferenceError('f')];
for (const e of errors) console.log(e.name, e instanceof Error, e.constructor.name, String(e));
const withCause = new Error('outer', { cause: new Error('inner') });
console.log(withCause.cause.message);
const agg = new AggregateError([new Error('a'), new Error('b')], 'many');
console.log(agg.name, agg.errors.length, agg.message);
