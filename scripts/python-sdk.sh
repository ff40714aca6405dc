#!/usr/bin/env bash
# Builds the Python SDK's wheel (the sidecar binary inside it) with maturin, installs it into a
# fresh virtual environment and runs its pytest suite there. The tools (maturin, pytest) live in
# a virtual environment cached outside the repository; the command packages and the Python
# interpreter come from scripts/fetch-packages.sh and scripts/fetch-python.sh.
#
#   scripts/python-sdk.sh            # build, install, test
#   WHEEL_ONLY=1 scripts/python-sdk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sidecar-target}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/secure-exec-sidecar/python-sdk"
python="${PYTHON:-python3}"

cargo build --release --locked -p sidecar
mkdir -p sdk/python/python/secure_exec/bin
cp "$CARGO_TARGET_DIR/release/secure-exec-sidecar" sdk/python/python/secure_exec/bin/

if [[ ! -x "$cache/tools/bin/maturin" || ! -x "$cache/tools/bin/pytest" ]]; then
    rm -rf "$cache/tools"
    "$python" -m venv "$cache/tools"
    "$cache/tools/bin/pip" install --quiet "maturin>=1.5,<2" "pytest>=8,<9"
fi
rm -rf "$cache/wheels"
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/python-sdk" "$cache/tools/bin/maturin" build --release --locked \
    --interpreter "$python" -m sdk/python/Cargo.toml -o "$cache/wheels" --quiet
wheel="$(ls "$cache"/wheels/secure_exec-*.whl)"
echo "built $wheel"
[[ -n "${WHEEL_ONLY:-}" ]] && exit 0

# A new virtual environment each time: the wheel must install and work on its own.
rm -rf "$cache/venv"
"$python" -m venv "$cache/venv"
"$cache/venv/bin/pip" install --quiet "$wheel" "pytest>=8,<9"
export SECURE_EXEC_PACKAGES SECURE_EXEC_PYTHON
SECURE_EXEC_PACKAGES="$(scripts/fetch-packages.sh)"
SECURE_EXEC_PYTHON="$(scripts/fetch-python.sh)"
cd "$cache"
exec "$cache/venv/bin/python" -m pytest -q -p no:cacheprovider "$root/sdk/python/tests"
