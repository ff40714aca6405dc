//! End-to-end tests: the real `secure-exec-sidecar` binary spoken to over real pipes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod architecture;
mod backpressure;
mod commands;
mod compatibility;
mod exec;
mod host_dir;
mod javascript;
mod network;
mod persistence;
mod python;
mod run;
mod stdio;
