const et = new EventTarget();
et.addEventListener('custom', (e) => console.log('type', e.type, e.defaultPrevented));
const ev = new Event('custom', { cancelable: true });
ev.preventDefault();
console.log(et.dispatchEvent(ev));
const ce = typeof CustomEvent === 'function' ? new CustomEvent('c', { detail: 42 }) : { detail: 42 };
console.log(ce.detail);
