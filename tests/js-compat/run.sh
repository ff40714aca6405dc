#!/usr/bin/env bash
# Runs every case in tests/js-compat/cases under the sidecar's `node` command and compares its
# stdout with the .out file next to it (made with the host's Node.js), requiring exit status 0.
#
#   tests/js-compat/run.sh [SIDECAR] [NODE_WASM] [FILTER]
#
# SIDECAR defaults to /root/.cache/sidecar-target/release/secure-exec-sidecar, NODE_WASM to
# /root/.cache/secure-exec-sidecar/node/node.wasm; FILTER (a substring) selects cases.
# Cases run from the scratch directory /tmp/jscompat-work, which is mapped into the VM at the
# same path. Prints PASS/FAIL per case (KNOWN for a failure known-failures.txt expects) and a
# total; exits 1 when a case fails unexpectedly. VERBOSE=1 shows each failure's diff and stderr.
# With REGEN=1, the .out files are written from the host's `node` (/usr/bin/node) instead.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
sidecar="${1:-/root/.cache/sidecar-target/release/secure-exec-sidecar}"
wasm="${2:-/root/.cache/secure-exec-sidecar/node/node.wasm}"
filter="${3:-}"
work=/tmp/jscompat-work
timeout_s="${JSCOMPAT_TIMEOUT:-30}"
mkdir -p "$work"

# Expected failures: known-failures.txt's `<case>: <reason>` lines, and its `# run.sh: <case>:
# <reason>` lines (failures of this script's host-directory setup only).
declare -A known=()
if [[ -f "$here/known-failures.txt" ]]; then
    while IFS= read -r line; do
        line="${line#\# run.sh: }"
        [[ -z "$line" || "$line" == \#* ]] && continue
        known["${line%%:*}"]="${line#*: }"
    done <"$here/known-failures.txt"
fi

pass=0
fail=0
expected_fail=0
for case_path in "$here"/cases/*.js "$here"/cases/*.mjs; do
    [[ -f "$case_path" ]] || continue
    name="$(basename "$case_path")"
    [[ -n "$filter" && "$name" != *"$filter"* ]] && continue
    cp "$case_path" "$work/$name"
    expected="${case_path%.*}.out"
    if [[ "${REGEN:-}" == 1 ]]; then
        if (cd "$work" && timeout "$timeout_s" node "$work/$name" >"$expected.tmp"); then
            mv "$expected.tmp" "$expected"
        else
            echo "REGEN FAIL $name"
            rm -f "$expected.tmp"
        fi
        continue
    fi
    (cd "$work" && timeout "$timeout_s" "$sidecar" run --dir "$work" "$wasm" "$work/$name" \
        >"$work/$name.stdout" 2>"$work/$name.stderr")
    status=$?
    if [[ $status -eq 0 ]] && cmp -s "$expected" "$work/$name.stdout"; then
        if [[ -n "${known[$name]:-}" ]]; then
            echo "FAIL $name (listed in known-failures.txt but passes: take it off)"
            fail=$((fail + 1))
        else
            echo "PASS $name"
            pass=$((pass + 1))
        fi
    elif [[ -n "${known[$name]:-}" ]]; then
        echo "KNOWN $name (exit $status): ${known[$name]}"
        expected_fail=$((expected_fail + 1))
    else
        echo "FAIL $name (exit $status)"
        fail=$((fail + 1))
        if [[ -n "${VERBOSE:-}" ]]; then
            diff "$expected" "$work/$name.stdout" | head -40
            head -20 "$work/$name.stderr"
        fi
    fi
done
[[ "${REGEN:-}" == 1 ]] && exit 0
echo "total: $((pass + fail + expected_fail)), passed: $pass, known failures: $expected_fail, failed: $fail"
[[ $fail -eq 0 ]]
