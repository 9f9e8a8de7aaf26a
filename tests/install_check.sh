#!/usr/bin/env bash
# Installs the build into a temporary DESTDIR and compiles the README's first program against the
# installed headers and pkg-config files, as another project would.
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp" --quiet > /dev/null
pc=$(dirname "$(find "$tmp" -name autograd.pc | head -1)")
prefix=$(sed -n 's/^prefix=//p' "$pc/autograd.pc")
flags=$(PKG_CONFIG_PATH="$pc" pkg-config --define-variable=prefix="$tmp$prefix" --cflags --libs autograd nn)
libdir=$(PKG_CONFIG_PATH="$pc" pkg-config --define-variable=prefix="$tmp$prefix" --variable=libdir autograd)
g++ -std=c++20 "$src/examples/first.cpp" $flags -Wl,-rpath,"$libdir" -o "$tmp/first"
"$tmp/first" | tee "$tmp/out"
grep -q "gradcheck: passed" "$tmp/out"
