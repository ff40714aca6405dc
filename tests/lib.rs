//! Shared helpers for the integration tests in `it/`.
#![forbid(unsafe_code)]
