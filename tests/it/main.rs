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

/// Replays `trace` with the real binary (`env` set, as where its interpreters are) and checks
/// that every output frame matched.
pub(crate) fn assert_replays(trace: &std::path::Path, env: &[(&str, &str)]) {
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
        .envs(env.iter().copied())
        .args(["replay", trace.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    assert!(String::from_utf8_lossy(&replay.stdout).contains("replay matched"));
}
