//! The kernel's ways to the outside world: host directories for `host_dir` mounts ([`fs`], a
//! port the embedder injects, every exchange with it recorded by [`journal`] when a trace is
//! written) and the durable store for persistence ([`store`], reached through [`effect`]s the
//! driver performs). (The engine that runs guest programs is [`crate::syscalls::engine`]: it is
//! lent the syscalls.)

pub mod effect;
pub mod fs;
pub mod journal;
pub mod module;
pub mod package;
pub mod programs;
pub mod python;
pub mod software;
pub mod store;
