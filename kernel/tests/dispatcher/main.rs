//! The request dispatcher driven through its public sans-IO API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod callbacks;
mod conversation;
mod devices;
mod fakes;
mod filesystem;
mod harness;
mod host_calls;
mod host_effects;
mod js_bridge;
mod layers;
mod limits;
mod mounts;
mod persistence;
mod processes;
mod rejections;
mod software;
mod vm_limits;
