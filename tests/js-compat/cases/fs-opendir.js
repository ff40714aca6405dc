const fs = require('fs');
const dir = '/tmp/jscompat-work/fs-opendir';
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir);
for (const name of ['c', 'a', 'b']) fs.writeFileSync(`${dir}/${name}`, name);
(async () => {
  const handle = await fs.promises.opendir(dir);
  const names = [];
  for await (const entry of handle) names.push(`${entry.name}:${entry.isFile()}`);
  console.log(names.sort());
  fs.rmSync(dir, { recursive: true });
})();
