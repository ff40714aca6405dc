#!/usr/bin/env bash
# Runs WebAssembly/wasi-testsuite's preview-1 tests against this sidecar through its own test
# runner and wasmtime adapter: the adapter runs `$WASMTIME [--env K=V]... [--dir D::/] MODULE
# ARGS...`, and `secure-exec-sidecar run` speaks that command line.
#
#   scripts/wasi-testsuite.sh CHECKOUT
#
# CHECKOUT is a clone of https://github.com/WebAssembly/wasi-testsuite at its `prod/testsuite-base`
# branch (the one with the prebuilt test modules). Needs Python >= 3.12 with `colorama` and
# `requests` (the runner's requirements). Nothing is fetched here: the suite is not vendored.
set -euo pipefail
checkout="${1:?usage: scripts/wasi-testsuite.sh CHECKOUT}"
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sidecar-target}"
cargo build --release --locked -p sidecar
export WASMTIME="$CARGO_TARGET_DIR/release/secure-exec-sidecar run"
cd "$checkout"
suites=()
for language in c rust assemblyscript; do
    suite="tests/$language/testsuite/wasm32-wasip1"
    [[ -d "$suite" ]] && suites+=("$suite")
done
exec "${PYTHON:-python3}" test-runner/wasi_test_runner.py --disable-colors -t "${suites[@]}" -r adapters/wasmtime.py
