#!/bin/sh
# Build an AssemblyScript plugin for rwq: PLUGIN_DIR/main.ts (or PLUGIN_DIR/assembly/index.ts)
# compiled with the SDK (assembly/rwq.ts as a library, assembly/exports.ts as a second entry).
#
#   sdk/assemblyscript/build.sh PLUGIN_DIR [OUTPUT]     # OUTPUT defaults to PLUGIN_DIR/main.wasm
#
# Needs Node and the pinned compiler: `npm ci --prefix sdk/assemblyscript` (or `make toolchains`).
# ASCFLAGS is honoured.
set -eu
sdk=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: build.sh PLUGIN_DIR [OUTPUT]}
out=${2:-$dir/main.wasm}
entry=$dir/main.ts
[ -f "$entry" ] || entry=$dir/assembly/index.ts
[ -f "$entry" ] || { echo "build.sh: no $dir/main.ts or $dir/assembly/index.ts" >&2; exit 2; }
asc=$sdk/node_modules/.bin/asc
[ -x "$asc" ] || { echo "build.sh: $asc missing: run npm ci --prefix $sdk (or make toolchains)" >&2; exit 2; }
# --runtime incremental: the default TLSF allocator and GC; rwq_alloc hands out unmanaged blocks.
# --use abort=rwqAbort: the host links no env.abort; rwqAbort writes to stderr and traps.
# --exportStart _initialize: top-level code runs once after instantiation (a WASI reactor).
# shellcheck disable=SC2086
exec "$asc" "$sdk/assembly/exports.ts" "$entry" \
    --lib "$sdk/assembly" --use abort=rwqAbort \
    --runtime incremental --exportStart _initialize \
    -O3 ${ASCFLAGS:-} -o "$out"
