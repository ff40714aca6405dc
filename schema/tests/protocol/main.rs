//! Tests of the wire protocol crate: one binary, one module per area.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod decoder;
mod generated;
mod golden;
mod roundtrip;
mod support;
mod validation;
