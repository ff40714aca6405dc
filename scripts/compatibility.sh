#!/usr/bin/env bash
# Runs every command of the installed `@agentos-software` packages through the protocol (the
# `compatibility` test in tests/it) and writes docs/compatibility.md from the results: each
# command's representative invocation, what it should give, and whether it did.
#
#   scripts/compatibility.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sidecar-target}"
SECURE_EXEC_WRITE_COMPAT="$PWD/docs/compatibility.md" \
    cargo test --locked -p sidecar --test it compatibility -- --nocapture || true
echo "wrote docs/compatibility.md: $(grep -o '[0-9]* of [0-9]* commands behave as they do on Linux' docs/compatibility.md)"
