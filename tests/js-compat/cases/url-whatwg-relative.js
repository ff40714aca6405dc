const base = 'https://example.com/dir/sub/page.html?x=1#top';
for (const rel of ['other.html', '../up.html', '/root', '//cdn.example.net/lib.js', '?y=2', '#frag', '', 'http:same-scheme', './a/../b']) {
  console.log(JSON.stringify(rel), '->', new URL(rel, base).href);
}
