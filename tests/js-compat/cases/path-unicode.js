const path = require('path');
console.log(path.join('/données', 'été', 'fichier.txt'));
console.log(path.basename('/x/日本語.md', '.md'));
console.log(path.extname('/x/файл.json'));
console.log(path.relative('/α/β', '/α/γ'));
