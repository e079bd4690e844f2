#!/bin/sh
# Rebuild the WASM sample plugins' main.wasm from their source with the SDKs.
#
#   src/rwq/samples/build.sh                      # every WASM sample, in place
#   src/rwq/samples/build.sh NAME [OUTPUT]        # one: tenant-sla-monitor (C) or alert-manager
#                                         # (AssemblyScript); OUTPUT defaults to NAME/main.wasm
#
# Needs the toolchains of sdk/c/build.sh (clang, wasm-ld, wasi-libc) and
# sdk/assemblyscript/build.sh (node, asc): `make toolchains` installs them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
sdk=$(cd "$here/../../../sdk" && pwd)

build() {
    name=$1
    out=${2:-$here/$name/main.wasm}
    if [ -f "$here/$name/src/main.c" ]; then
        "$sdk/c/build.sh" "$here/$name/src" "$out"
    elif [ -f "$here/$name/src/main.ts" ]; then
        "$sdk/assemblyscript/build.sh" "$here/$name/src" "$out"
    else
        echo "build.sh: $here/$name has no src/main.c or src/main.ts" >&2
        exit 2
    fi
    echo "built $out"
}

if [ $# -eq 0 ]; then
    for name in tenant-sla-monitor alert-manager; do build "$name"; done
else
    build "$@"
fi
