const ac = new AbortController();
console.log(ac.signal.aborted);
ac.signal.addEventListener('abort', () => console.log('abort event', ac.signal.reason.name));
ac.abort();
console.log(ac.signal.aborted);
ac.abort();
const ac2 = new AbortController();
ac2.abort('why');
console.log(ac2.signal.reason);
try { ac2.signal.throwIfAborted(); } catch (e) { console.log('thrown', e); }
const s = AbortSignal.abort();
console.log(s.aborted, s.reason instanceof DOMException);
