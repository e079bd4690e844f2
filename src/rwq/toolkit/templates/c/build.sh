#!/bin/sh
# Build main.wasm from the .c files here: what `rwq plugin build .` runs, for a machine
# without rwq. A WASI reactor (-mexec-model=reactor: _initialize runs the constructors once;
# a command module would run them again on every call).
#
# Needs clang, wasm-ld and wasi-libc (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32).
# CC and CFLAGS are honoured.
set -eu
cd "$(dirname "$0")"
# shellcheck disable=SC2086
exec "${CC:-clang}" --target=wasm32-wasi -mexec-model=reactor -O2 \
    -Wall -Wextra -Wno-unused-parameter ${CFLAGS:-} -I. \
    -Wl,-z,stack-size=65536 -Wl,--strip-debug \
    -o main.wasm ./*.c
