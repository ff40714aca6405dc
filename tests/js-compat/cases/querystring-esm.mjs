import querystring from 'node:querystring';
import { parse } from 'querystring';
console.log(querystring.stringify({ x: [1, 2] }));
console.log(parse('q=node%2Bjs').q);
