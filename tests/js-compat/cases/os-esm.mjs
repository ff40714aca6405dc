import os, { EOL, platform } from 'node:os';
console.log(EOL === '\n', platform(), os.type());
console.log(typeof os.constants.errno, typeof os.constants.priority);
