process.on('warning', (w) => console.log('warning event', w.name, w.message));
process.emitWarning('something odd');
process.emitWarning('custom type', 'MyWarning');
console.log('after emit');
