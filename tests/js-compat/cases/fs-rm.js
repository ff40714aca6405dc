const fs = require('fs');
const dir = '/tmp/jscompat-work/fs-rm';
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir + '/deep/er', { recursive: true });
fs.writeFileSync(dir + '/deep/er/f', 'x');
fs.writeFileSync(dir + '/g', 'x');
fs.rmSync(dir + '/g');
console.log(fs.readdirSync(dir));
try { fs.rmSync(dir + '/deep'); } catch (e) { console.log(e.code); }
try { fs.rmSync(dir + '/missing'); } catch (e) { console.log(e.code); }
fs.rmSync(dir + '/missing', { force: true });
try { fs.rmdirSync(dir + '/deep'); } catch (e) { console.log(e.code); }
fs.unlinkSync(dir + '/deep/er/f');
fs.rmdirSync(dir + '/deep/er');
console.log(fs.readdirSync(dir + '/deep'));
fs.rmSync(dir, { recursive: true });
console.log(fs.existsSync(dir));
