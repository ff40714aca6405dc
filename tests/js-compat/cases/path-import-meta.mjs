import { fileURLToPath } from 'node:url';
import path from 'node:path';
const file = fileURLToPath(import.meta.url);
console.log(file);
console.log(path.dirname(file));
console.log(import.meta.url.startsWith('file:///'));
