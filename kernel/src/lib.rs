//! The deterministic, sans-IO virtual kernel (see issue: kernel core).
#![forbid(unsafe_code)]
