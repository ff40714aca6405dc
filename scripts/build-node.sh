#!/usr/bin/env bash
# Builds the `node` command (QuickJS-NG compiled to wasm32-wasip1, runtime-js/runner/node.c, and
# the JavaScript layer runtime-js/lib bundled into it) into a cache outside the repository, once
# per source content. Prints the directory holding `node.wasm`.
#
#   scripts/build-node.sh            # build if missing, print the directory
#
# The directory is $SECURE_EXEC_NODE if set, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/secure-exec-sidecar/node-<hash of the inputs>. It needs
# Debian's clang-16, lld-16, wasi-libc and libclang-rt-16-dev-wasm32 (installed here with
# apt-get when missing and this runs as root), npm (for the bundled packages and esbuild), and
# the crate registry (QuickJS-NG's sources ship in the rquickjs-sys crate).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/secure-exec-sidecar"
QUICKJS_CRATE="rquickjs-sys-0.14.0"
QUICKJS_SHA256="cee271d0eeba64f0915b846cb7ae02e16faf3dfdffdca91731101d9d30fe3423"
CC="${NODE_CC:-clang-16}"

inputs_hash() {
    (cd "$repo" && find runtime-js scripts/build-node.sh -type f -not -path '*/node_modules/*' -print0 \
        | sort -z | xargs -0 sha256sum; echo "$QUICKJS_CRATE $QUICKJS_SHA256 $CC") | sha256sum | cut -c1-16
}

out="${SECURE_EXEC_NODE:-$cache/node-$(inputs_hash)}"
# The sidecar's default place holds the latest build.
publish() {
    if [[ -z "${SECURE_EXEC_NODE:-}" ]] && ! cmp -s "$out/node.wasm" "$cache/node/node.wasm"; then
        mkdir -p "$cache/node"
        cp "$out/node.wasm" "$cache/node/node.wasm.tmp"
        mv "$cache/node/node.wasm.tmp" "$cache/node/node.wasm"
    fi
    echo "$out"
}
if [[ -f "$out/node.wasm" ]]; then
    publish
    exit 0
fi

say() { echo "build-node: $*" >&2; }

# The WebAssembly C toolchain.
if ! command -v "$CC" >/dev/null 2>&1 || [[ ! -d /usr/lib/wasm32-wasi ]] \
    || ! ls /usr/lib/llvm-16/lib/clang/16/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing clang-16, lld-16, wasi-libc, libclang-rt-16-dev-wasm32"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32 >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32 >&2; }
    else
        say "needs clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32 (apt-get install them)"
        exit 1
    fi
fi
command -v npm >/dev/null 2>&1 || { say "needs npm (for the bundled packages and esbuild)"; exit 1; }

mkdir -p "$cache"
work="$(mktemp -d "$cache/.node-build-XXXXXX")"
trap 'rm -rf "$work"' EXIT

# QuickJS-NG's sources, from the crate registry, checked.
sources="$cache/$QUICKJS_CRATE"
if [[ ! -f "$sources/.checked" ]]; then
    say "fetching $QUICKJS_CRATE"
    curl -sSfL -o "$work/quickjs.crate" "https://static.crates.io/crates/rquickjs-sys/$QUICKJS_CRATE.crate"
    echo "$QUICKJS_SHA256  $work/quickjs.crate" | sha256sum --check --quiet >&2
    rm -rf "$sources"
    tar xzf "$work/quickjs.crate" -C "$cache"
    touch "$sources/.checked"
fi
# QuickJS-NG turns its stack bound off on WASI (`update_stack_limit`), so deep recursion ran
# the shadow stack into the heap below it instead of throwing a RangeError. The sources are
# copied and that one choice undone: the bound works on a WASI stack as on any other, measured
# from a local's address (`__builtin_frame_address` is not the shadow stack's on wasm32).
quickjs="$work/quickjs"
cp -r "$sources/quickjs" "$quickjs"
python3 - "$quickjs/quickjs.c" <<'PY'
import sys
path = sys.argv[1]
source = open(path).read()
patches = [
    ("#if defined(__wasi__)\n    rt->stack_limit = 0; /* no limit */\n#else",
     "#if 0 /* secure-exec: the WASI stack is bounded like any other */\n    rt->stack_limit = 0;\n#else"),
    ("#if defined(__clang__) || defined(__GNUC__)\n    return (uintptr_t)__builtin_frame_address(0);",
     "#if (defined(__clang__) || defined(__GNUC__)) && !defined(__wasi__)\n    return (uintptr_t)__builtin_frame_address(0);"),
]
for old, new in patches:
    if source.count(old) != 1:
        sys.exit(f"build-node: quickjs.c no longer has the code the stack-bound patch expects: {old[:40]!r}")
    source = source.replace(old, new)
open(path, "w").write(source)
PY

# The npm packages, once per lock file.
npm_dir="$cache/node-npm-$(sha256sum "$repo/runtime-js/package-lock.json" | cut -c1-16)"
if [[ ! -f "$npm_dir/.installed" ]]; then
    say "installing the bundled npm packages"
    rm -rf "$npm_dir"
    mkdir -p "$npm_dir"
    cp "$repo/runtime-js/package.json" "$repo/runtime-js/package-lock.json" "$npm_dir/"
    (cd "$npm_dir" && npm ci --no-audit --no-fund --silent >&2)
    touch "$npm_dir/.installed"
fi

# The JavaScript layer, bundled into one script and embedded as a C array.
NODE_PATH="$npm_dir/node_modules" "$npm_dir/node_modules/.bin/esbuild" "$repo/runtime-js/lib/bootstrap.js" \
    --bundle --format=iife --platform=browser --target=es2023 --log-level=warning \
    --main-fields=browser,module,main --keep-names \
    --alias:process="$repo/runtime-js/lib/internal/process_shim.js" \
    --define:global=globalThis \
    --outfile="$work/bootstrap.js"
# The start-up script as bytecode, compiled by a build-machine tool from the same QuickJS sources.
"${HOST_CC:-cc}" -O2 -D_GNU_SOURCE -I"$quickjs" "$repo/runtime-js/tools/bytecode.c" "$quickjs/quickjs.c" \
    "$quickjs/libregexp.c" "$quickjs/libunicode.c" "$quickjs/dtoa.c" -lm -lpthread -o "$work/bytecode" -w
"$work/bytecode" "$work/bootstrap.js" node:internal/bootstrap "$work/bootstrap.bin"

# The npm builtins parsed on first use, each bundled on its own; Node's builtins they require
# stay outside (the runtime's own answer them).
builtins=(buffer events util stream string_decoder assert url querystring process)
deps=()
for entry in "$repo"/runtime-js/deps/*.js; do
    name="$(basename "$entry" .js)"
    externals=()
    for builtin in "${builtins[@]}"; do
        [[ "$builtin" == "$name" ]] || externals+=("--external:$builtin")
    done
    NODE_PATH="$npm_dir/node_modules" "$npm_dir/node_modules/.bin/esbuild" "$entry" \
        --bundle --format=cjs --platform=browser --target=es2023 --log-level=warning \
        --main-fields=browser,module,main --keep-names --define:global=globalThis "${externals[@]}" \
        --outfile="$work/deps/$name.js"
    deps+=("$name")
done
python3 - "$work" "${deps[@]}" <<'PY'
import sys
work, deps = sys.argv[1], sys.argv[2:]

def array(out, name, data):
    out.write(f"static const unsigned char {name}[] = {{\n")
    for i in range(0, len(data), 20):
        out.write(",".join(str(b) for b in data[i:i + 20]) + ",\n")
    out.write("0};\n")

with open(f"{work}/node_bootstrap.h", "w") as out:
    out.write("/* Generated by scripts/build-node.sh from runtime-js/lib (QuickJS bytecode). */\n")
    data = open(f"{work}/bootstrap.bin", "rb").read()
    array(out, "node_bootstrap_bytecode", data)
    out.write(f"static const unsigned int node_bootstrap_bytecode_len = {len(data)};\n")
with open(f"{work}/node_deps.h", "w") as out:
    out.write("/* Generated by scripts/build-node.sh from runtime-js/deps. */\n")
    for index, name in enumerate(deps):
        array(out, f"node_dep_{index}", open(f"{work}/deps/{name}.js", "rb").read())
    out.write("static const struct { const char *name; const unsigned char *source; unsigned int len; } node_deps[] = {\n")
    for index, name in enumerate(deps):
        size = len(open(f"{work}/deps/{name}.js", "rb").read())
        out.write(f'    {{ "{name}", node_dep_{index}, {size} }},\n')
    out.write("};\n")
PY

say "compiling node.wasm"
flags=(--target=wasm32-wasi -O2 -D_GNU_SOURCE -D_WASI_EMULATED_PROCESS_CLOCKS -D_WASI_EMULATED_SIGNAL
    -I"$quickjs" -I"$work" -Wno-everything)
pids=()
for file in quickjs libregexp libunicode dtoa; do
    "$CC" "${flags[@]}" -c "$quickjs/$file.c" -o "$work/$file.o" & pids+=($!)
done
"$CC" "${flags[@]}" -Wall -Werror -Wno-unused-parameter -c "$repo/runtime-js/runner/node.c" -o "$work/node.o" & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done
# A reactor (`_initialize`, then `run`), with `wizer.initialize` to load the layer into a snapshot.
"$CC" --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,-z,stack-size=1048576 "$work"/*.o -o "$work/node.wasm" \
    -lwasi-emulated-process-clocks -lwasi-emulated-signal

mkdir -p "$out"
cp "$work/node.wasm" "$out/node.wasm.tmp"
mv "$out/node.wasm.tmp" "$out/node.wasm"
publish
