// Descriptors the event loop waits on (sockets): each with the events it wants and what to call
// when they come. The loop (bootstrap.js `tick`) polls them, through the kernel, whenever no
// timer is due: with the time to the next timer as the bound, or none when no timer is left.
import { native } from './native.js';

export const POLLIN = 0x1;
export const POLLOUT = 0x2;
export const POLLERR = 0x1000;
export const POLLHUP = 0x2000;
export const POLLNVAL = 0x4000;

const watched = new Map(); // fd -> { events, callback, refed }

export function watch(fd, events, callback) {
  const entry = watched.get(fd);
  if (entry) {
    entry.events = events;
    entry.callback = callback;
  } else watched.set(fd, { events, callback, refed: true });
}

export function unwatch(fd) {
  watched.delete(fd);
}

export function setRef(fd, refed) {
  const entry = watched.get(fd);
  if (entry) entry.refed = refed;
}

/** Whether a watched descriptor keeps the program alive. */
export function hasRefed() {
  for (const entry of watched.values()) if (entry.refed) return true;
  return false;
}

/** Waits up to `timeoutMs` (-1: without bound) for a watched descriptor and runs its callback. */
export function pollOnce(timeoutMs) {
  const fds = [...watched.keys()];
  if (fds.length === 0) return false;
  const events = fds.map((fd) => watched.get(fd).events);
  const revents = native.netPoll(fds, events, timeoutMs);
  if (typeof revents === 'number') return false;
  let ran = false;
  fds.forEach((fd, index) => {
    const ready = revents[index];
    const entry = watched.get(fd);
    if (ready !== 0 && entry) {
      ran = true;
      entry.callback(ready);
    }
  });
  return ran;
}
