// `os`: what a VM is, as its kernel presents it. No host facts leak: the host's name, users,
// CPUs and memory are the VM's own fixed values.
import { LINUX_ERRNO } from './internal/errors.js';

const os = {
  EOL: '\n',
  devNull: '/dev/null',
  arch: () => 'wasm32',
  platform: () => 'linux',
  type: () => 'Linux',
  release: () => '6.0.0-secure-exec',
  version: () => '#1 SMP secure-exec',
  machine: () => 'wasm32',
  hostname: () => process.env.HOSTNAME || 'localhost',
  homedir: () => process.env.HOME || '/root',
  tmpdir: () => {
    const dir = process.env.TMPDIR || process.env.TMP || process.env.TEMP || '/tmp';
    return dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir;
  },
  endianness: () => 'LE',
  uptime: () => process.uptime(),
  loadavg: () => [0, 0, 0],
  totalmem: () => 1073741824,
  freemem: () => 536870912,
  availableParallelism: () => 1,
  cpus: () => [{ model: 'wasm32', speed: 0, times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 } }],
  networkInterfaces: () => ({}),
  userInfo: () => ({ uid: 0, gid: 0, username: process.env.USER || 'root', homedir: process.env.HOME || '/root', shell: process.env.SHELL || '/bin/sh' }),
  getPriority: () => 0,
  setPriority: () => {},
  constants: {
    signals: {
      SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGIOT: 6, SIGBUS: 7, SIGFPE: 8,
      SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGCHLD: 17,
      SIGSTKFLT: 16, SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24,
      SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29, SIGPOLL: 29, SIGPWR: 30, SIGSYS: 31,
    },
    errno: Object.fromEntries(Object.entries(LINUX_ERRNO).filter(([name]) => name !== 'ENOTCAPABLE')),
    priority: { PRIORITY_LOW: 19, PRIORITY_BELOW_NORMAL: 10, PRIORITY_NORMAL: 0, PRIORITY_ABOVE_NORMAL: -7, PRIORITY_HIGH: -14, PRIORITY_HIGHEST: -20 },
  },
};
export default os;
