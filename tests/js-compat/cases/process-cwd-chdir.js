process.chdir('/tmp/jscompat-work');
console.log(process.cwd());
process.chdir('/tmp');
console.log(process.cwd());
try {
  process.chdir('/tmp/jscompat-work/missing-dir-xyz');
} catch (e) {
  console.log(e.code);
}
process.chdir('/tmp/jscompat-work');
console.log(process.cwd());
