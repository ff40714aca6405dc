//! The ports the embedder injects to reach the outside world: host directories for `host_dir`
//! mounts ([`fs`]) and the durable store for persistence ([`store`]). (The third port, the
//! engine that runs guest programs, is [`crate::syscalls::engine`]: it is lent the syscalls.)

pub mod fs;
pub mod store;
