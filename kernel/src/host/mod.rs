//! The ports the embedder injects: host directories for `host_dir` mounts ([`fs`]), the durable
//! store for persistence ([`store`]) and the engine that runs guest programs ([`engine`]). The
//! kernel reaches the outside world only through these.

pub mod engine;
pub mod fs;
pub mod store;
