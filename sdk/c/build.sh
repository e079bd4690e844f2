#!/bin/sh
# Build a C plugin for rwq: every .c file of PLUGIN_DIR, linked as a WASI reactor module.
#
#   sdk/c/build.sh PLUGIN_DIR [OUTPUT]      # OUTPUT defaults to PLUGIN_DIR/main.wasm
#
# Needs clang, wasm-ld and wasi-libc (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32,
# or `make toolchains`). CC and CFLAGS are honoured.
set -eu
sdk=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: build.sh PLUGIN_DIR [OUTPUT]}
out=${2:-$dir/main.wasm}
# -mexec-model=reactor: _initialize runs the constructors once; a command module (_start)
# would run them again on every call. Exports come from export_name attributes (rwq.h).
# shellcheck disable=SC2086
exec "${CC:-clang}" --target=wasm32-wasi -mexec-model=reactor -O2 \
    -Wall -Wextra -Wno-unused-parameter ${CFLAGS:-} -I"$sdk" \
    -Wl,-z,stack-size=65536 -Wl,--strip-debug \
    -o "$out" "$dir"/*.c
