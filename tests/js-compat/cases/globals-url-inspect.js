const u = new URL('https://user@example.com:8080/p?q=1#h');
console.log(u);
console.log(new URLSearchParams('a=1&b=2'));
console.log(String(u), u instanceof URL, typeof URL.parse);
