#!/usr/bin/env bash
# Installs the pure-JavaScript npm packages the tests run unchanged under the sandbox's `node`
# (tests/js-packages: js-yaml with its dependency argparse, semver, marked, each with its CLI)
# into a cache outside the repository, once per lock file. Prints the directory holding
# `node_modules`.
#
#   scripts/fetch-js-packages.sh
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
lock="$repo/tests/js-packages/package-lock.json"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/secure-exec-sidecar/js-packages-$(sha256sum "$lock" | cut -c1-16)"
if [[ ! -f "$dir/.installed" ]]; then
    command -v npm >/dev/null 2>&1 || { echo "fetch-js-packages: npm is needed" >&2; exit 1; }
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$repo/tests/js-packages/package.json" "$lock" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --silent >&2)
    touch "$dir/.installed"
fi
echo "$dir"
