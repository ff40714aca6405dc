try {
  require('./definitely-not-here');
} catch (e) {
  console.log(e.code);
}
try {
  require('some-missing-package-xyz');
} catch (e) {
  console.log(e.code, e.message.split('\n')[0]);
}
try {
  require('node:nonexistent');
} catch (e) {
  console.log(e.code);
}
