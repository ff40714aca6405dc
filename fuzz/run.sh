#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the other, and exits
# non-zero if any of them finds a crash, a leak, a timeout or an out-of-memory.
#
#   fuzz/run.sh SECONDS [TARGET...]
#
# - Works on stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use -Zsanitizer=address (ASan).
# - Builds into $CARGO_TARGET_DIR (default ~/.cache/sidecar-fuzz-target), one cargo job.
# - The checked-in seeds (fuzz/corpus/TARGET) are read, never written: new inputs go to a working
#   corpus under $FUZZ_WORK_DIR (default $CARGO_TARGET_DIR/fuzz-work), kept between runs.
# - Crashing inputs land in fuzz/artifacts/TARGET/ (git-ignored); minimise one with
#   `cargo fuzz tmin TARGET fuzz/artifacts/TARGET/crash-...` and keep it in fuzz/regressions/.
# - Needs cargo-fuzz: `cargo install cargo-fuzz --locked`.
set -uo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift

cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sidecar-fuzz-target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
export RUSTC_BOOTSTRAP=1
work="${FUZZ_WORK_DIR:-$CARGO_TARGET_DIR/fuzz-work}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# cargo-fuzz has no --locked: check the lock file first, so a stale one fails loudly.
cargo metadata --locked --format-version 1 >/dev/null || exit 1
cargo fuzz build || exit 1

status=0
summary=()
for target in "${targets[@]}"; do
    corpus="$work/corpus/$target"
    logdir="$work/logs/$target"
    mkdir -p "$corpus" "$logdir" "corpus/$target" "artifacts/$target"
    rm -f "$logdir"/fuzz-*.log
    seeds=("$PWD/corpus/$target")
    if [[ -d regressions/$target ]]; then
        seeds+=("$PWD/regressions/$target") # replayed first, like any corpus input
    fi
    echo "== $target (${seconds}s)"
    # -jobs=1 runs the fuzzer in one child process whose output goes to fuzz-0.log in the
    # current directory, hence the subshell in $logdir (the other paths are absolute).
    (
        cd "$logdir" &&
            cargo fuzz run --fuzz-dir "$OLDPWD" "$target" "$corpus" "${seeds[@]}" -- \
                -max_total_time="$seconds" -jobs=1 -rss_limit_mb=2048 -print_final_stats=1 \
                -artifact_prefix="$OLDPWD/artifacts/$target/"
    )
    code=$?
    log="$logdir/fuzz-0.log"
    execs=$(grep -ho 'stat::average_exec_per_sec: *[0-9]*' "$log" 2>/dev/null | tail -1 | grep -o '[0-9]*$')
    runs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$log" 2>/dev/null | tail -1 | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" 2>/dev/null | tail -1)
    if [[ $code -ne 0 ]] || grep -qE '^==[0-9]+==ERROR|^SUMMARY: |panicked at|deadly signal' "$log" 2>/dev/null; then
        status=1
        echo "!! $target FAILED (exit $code); log: $log"
        # The report: from the first error line to the end.
        if [[ -f $log ]]; then
            awk '/^==[0-9]+==ERROR|panicked at|INFO: Seed|deadly signal/ { on = 1 } on' "$log" | tail -n 80
        fi
        if [[ -f $log ]]; then
            summary+=("$target: CRASH (exit $code), ${execs:-?} execs/s")
        else
            summary+=("$target: FAILED to build or start (exit $code)")
        fi
    else
        summary+=("$target: ok, ${runs:-?} runs, ${execs:-?} execs/s, ${cov:-cov: ?}")
    fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
