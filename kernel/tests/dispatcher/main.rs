//! The request dispatcher driven through its public sans-IO API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod callbacks;
mod conversation;
mod filesystem;
mod harness;
mod layers;
mod limits;
mod rejections;
