//! The ports the embedder injects to reach the outside world: host directories for `host_dir`
//! mounts ([`fs`]) and the durable store for persistence ([`store`]). (The third port, the
//! engine that runs guest programs, is [`crate::syscalls::engine`]: it is lent the syscalls.)
//! [`journal`] turns every exchange with the first two into data, for recording and replay.

pub mod fs;
pub mod journal;
pub mod store;
