#!/usr/bin/env bash
# Proves that `cmake --install` gives a package that find_package(cairn CONFIG) finds and links.
# How: install the build tree into a temp prefix, build test/install/consumer against it, run it.
set -euo pipefail
build_dir=$1
source_dir=$2
cxx_flags=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null
cmake -S "$source_dir/test/install/consumer" -B "$tmp/build" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_CXX_FLAGS="$cxx_flags" -DCMAKE_EXE_LINKER_FLAGS="$cxx_flags" >/dev/null
cmake --build "$tmp/build" >/dev/null
"$tmp/build/consumer"
test -x "$tmp/prefix/bin/cairn"
