import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
const body = await text(Readable.from(['con', 'sumers']));
console.log(body);
