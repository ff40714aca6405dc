const deep = { l1: { l2: { l3: { l4: { l5: 'bottom' } } } } };
console.log(deep);
console.log([[[[['deep array']]]]]);
console.log({ arr: [{ x: [{ y: 1 }] }] });
console.dir(deep, { depth: 0 });
console.dir(deep, { depth: null });
