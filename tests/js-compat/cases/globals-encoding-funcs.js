console.log(btoa('hello'), atob('aGVsbG8='));
console.log(encodeURIComponent('a b&c'), decodeURIComponent('%E2%82%AC'));
console.log(typeof structuredClone, typeof setInterval, typeof clearImmediate);
console.log(escape ? 'has escape' : 'no');
