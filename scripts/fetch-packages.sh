#!/usr/bin/env bash
# Installs the original's command packages (`@agentos-software/common` and what it depends on:
# coreutils, sed, grep, gawk, findutils, diffutils, tar, gzip) from npm into a cache outside the
# repository, once. Prints the directory holding `node_modules/@agentos-software/`.
#
#   scripts/fetch-packages.sh            # install if missing, print the directory
#
# The directory is $SECURE_EXEC_PACKAGES if set, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/secure-exec-sidecar/packages-<version>. Tests and the demo
# call this script themselves when the packages are missing.
set -euo pipefail

COMMON_VERSION="0.2.21"
dir="${SECURE_EXEC_PACKAGES:-${XDG_CACHE_HOME:-$HOME/.cache}/secure-exec-sidecar/packages-$COMMON_VERSION}"
marker="$dir/.installed"

if [[ ! -f "$marker" ]]; then
    command -v npm >/dev/null 2>&1 || { echo "fetch-packages: npm is needed (apt-get install npm)" >&2; exit 1; }
    mkdir -p "$(dirname "$dir")"
    # Install into a fresh directory and move it into place, so a concurrent or interrupted run
    # never leaves a half-installed cache behind the marker.
    staging="$(mktemp -d "$(dirname "$dir")/.staging.XXXXXX")"
    trap 'rm -rf "$staging"' EXIT
    npm install --prefix "$staging" --no-audit --no-fund --ignore-scripts --no-save --loglevel=error \
        "@agentos-software/common@$COMMON_VERSION" >&2
    touch "$staging/.installed"
    if ! mv -T "$staging" "$dir" 2>/dev/null; then
        # Someone else finished first (or a stale directory is in the way without a marker).
        [[ -f "$marker" ]] || { rm -rf "$dir"; mv -T "$staging" "$dir"; }
    fi
    trap - EXIT
fi
echo "$dir"
