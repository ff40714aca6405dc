//! The virtual filesystem (`kernel::vfs`) through its public API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;
mod differential;
mod escape;
mod limits;
mod overlay;
mod unit;
