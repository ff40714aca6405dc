async function failing() {
  await null;
  throw new TypeError('async type');
}
failing().catch((e) => console.log('caught', e.name, e.message));
(async () => {
  try {
    await failing();
  } catch (e) {
    console.log('try/catch', e instanceof TypeError);
  } finally {
    console.log('finally');
  }
})();
Promise.allSettled([failing(), Promise.resolve(1)]).then((r) => console.log(r.map((x) => x.status)));
