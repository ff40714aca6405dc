const fs = require('fs');
const check = (fn) => {
  try { fn(); console.log('no error'); } catch (e) { console.log(e.name, e.code); }
};
check(() => fs.readFileSync(123.5));
check(() => fs.readFileSync({}));
check(() => fs.writeFileSync('/tmp/jscompat-work/x\0y', 'a'));
check(() => Buffer.alloc(-1));
check(() => require('path').join(null));
check(() => setTimeout('not a function'));
