#!/usr/bin/env bash
# The portable build's instruction sets (docs/performance.md, "Portable build"): libautograd is built
# for plain x86-64 and again for each level in glibc-hwcaps/<level>/, and the dynamic loader loads
# the best copy the CPU supports. Checks, with tests/isa_probe (which prints the level and the file
# of the libautograd it runs, and checks one small computation):
#   1. the copy loaded is the best built level among those the loader reports as supported here
#      (`ld.so --help`), from the build tree (RUNPATH) and from the install layout through
#      LD_LIBRARY_PATH (the files put where `meson introspect --installed` says they go), and
#      ldconfig records every copy in its cache (how a system folder is searched);
#   2. with the CPU's features masked for the loader (GLIBC_TUNABLES=glibc.cpu.hwcaps=-...), as on an
#      older CPU, each lower level is loaded in turn, down to plain x86-64;
#   3. objdump: the plain libautograd and libnn hold no AVX instruction at all (nor AVX-512), an
#      x86-64-v3 copy no AVX-512 instruction, and each copy does use the vector width of its level.
#
#   isa_check.sh <build dir> <isa_probe>
set -euo pipefail
build=$(realpath "$1")
probe=$(realpath "$2")
fail() { echo "FAIL: $*"; exit 1; }
# The build tree's programs find libautograd through their RUNPATH (meson test sets
# LD_LIBRARY_PATH to the build tree; that path is checked below with the install layout).
unset LD_LIBRARY_PATH
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ldso=$(readelf -l "$probe" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ -x "$ldso" ] || fail "no program interpreter found for $probe"
levels=(x86-64-v4 x86-64-v3 x86-64-v2)  # best first
# The tunables that leave the loader at most `level` (its hwcaps subfolders above it unsupported).
mask_for() {
  case "$1" in
    x86-64-v3) echo 'glibc.cpu.hwcaps=-AVX512F' ;;
    x86-64-v2) echo 'glibc.cpu.hwcaps=-AVX2,-AVX512F' ;;
    x86-64) echo 'glibc.cpu.hwcaps=-SSE4_2,-AVX2,-AVX512F' ;;
  esac
}
# The levels the loader supports (with the tunables in $GLIBC_TUNABLES, if any), best first.
supported() {
  "$ldso" --help | sed -n '/^Subdirectories of glibc-hwcaps/,/^$/p' |
    sed -n 's/^ *\(x86-64-v[0-9]\) (supported.*/\1/p'
}
built=()
for l in "${levels[@]}"; do
  [ -e "$build/autograd/glibc-hwcaps/$l/libautograd.so.0" ] && built+=("$l")
done
[ ${#built[@]} -gt 0 ] || fail "no glibc-hwcaps copy of libautograd in $build/autograd"
echo "built: x86-64 ${built[*]}"
# The best built level among the supported ones ("x86-64": none, the plain copy).
expected() {
  local sup l
  sup=$(supported)
  for l in "${built[@]}"; do
    if grep -qx "$l" <<<"$sup"; then echo "$l"; return; fi
  done
  echo x86-64
}
# run_probe LIBDIR [ENV...]: the probe's level and file, checked against the expectation.
run_probe() {
  local libdir=$1 want out level file want_file
  shift
  want=$(if [ $# -gt 0 ]; then export "$@"; fi; expected)
  out=$(env "$@" "$probe") || fail "isa_probe ($*): $out"
  level=$(sed -n 's/^level //p' <<<"$out")
  file=$(sed -n 's/^file //p' <<<"$out")
  want_file=$libdir/libautograd.so.0
  [ "$want" = x86-64 ] || want_file=$libdir/glibc-hwcaps/$want/libautograd.so.0
  echo "  ${*:-(no mask)}: loaded $level from $file"
  [ "$level" = "$want" ] || fail "loaded the $level copy, expected $want (${*:-no mask})"
  [ "$(realpath "$file")" = "$(realpath "$want_file")" ] ||
    fail "loaded $file, expected $want_file (${*:-no mask})"
}

# ---- 1 and 2: the build tree (RUNPATH), this CPU and lower ones ------------------------------
echo "supported here: $(supported | tr '\n' ' ')"
run_probe "$build/autograd"
for l in x86-64-v3 x86-64-v2 x86-64; do
  run_probe "$build/autograd" "GLIBC_TUNABLES=$(mask_for "$l")"
done
[ "$(GLIBC_TUNABLES=$(mask_for x86-64) "$probe" | sed -n 's/^level //p')" = x86-64 ] ||
  fail "the plain copy could not be forced"

# ---- 1: the install layout, found through LD_LIBRARY_PATH -----------------------------------
# Each installed libautograd file (the plain one and the copies) under $work/root at its install path, with its SONAME link.
meson introspect "$build" --installed | python3 -c '
import json, sys
for src, dst in json.load(sys.stdin).items():
    if "/libautograd.so." in src:
        print(src + "\t" + dst)' |
  while IFS=$'\t' read -r src dst; do
    mkdir -p "$work/root$(dirname "$dst")"
    cp -P "$src" "$work/root$dst"
    soname=$(readelf -d "$src" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    [ -e "$work/root$(dirname "$dst")/$soname" ] || ln -s "$(basename "$dst")" "$work/root$(dirname "$dst")/$soname"
  done
libdir=$(dirname "$(find "$work/root" -path '*glibc-hwcaps*' -prune -o -name 'libautograd.so.0' -print | head -1)")
for l in "${built[@]}"; do
  [ -e "$libdir/glibc-hwcaps/$l/libautograd.so.0" ] || fail "the install puts no copy in glibc-hwcaps/$l/"
done
run_probe "$libdir" "LD_LIBRARY_PATH=$libdir"
# In a system folder the loader finds libraries through ld.so.cache: ldconfig (run after `meson
# install`) records each copy under its level.
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
"$ldconfig" -C "$work/ld.so.cache" -f /dev/null "$libdir"
cache=$("$ldconfig" -C "$work/ld.so.cache" -p)
for l in "${built[@]}"; do
  grep -q "libautograd.so.0 (.*hwcap: \"$l\")" <<<"$cache" ||
    fail "ldconfig does not record the $l copy"
done
run_probe "$libdir" "LD_LIBRARY_PATH=$libdir" "GLIBC_TUNABLES=$(mask_for x86-64)"

# ---- 3: the instructions in each copy --------------------------------------------------------
# Counts of instructions: AVX or later (VEX/EVEX: every such mnemonic starts with v in AT&T
# syntax; verr/verw are not vector instructions), on 256-bit registers, and AVX-512 (zmm or mask
# registers).
count() {
  objdump -d --no-show-raw-insn "$1" | awk -F'\t' 'NF >= 2 && $2 ~ /^v/ && $2 !~ /^ver[rw]/ {v++}
    $0 ~ /%ymm/ {y++} $0 ~ /%zmm|%k[0-7]/ {z++} END {printf "%d %d %d\n", v, y, z}'
}
read -r v y z < <(count "$build/autograd/libautograd.so.0")
echo "  plain libautograd: $v AVX, $y ymm, $z AVX-512 instructions"
[ "$v" -eq 0 ] && [ "$z" -eq 0 ] || fail "the plain libautograd uses AVX ($v) / AVX-512 ($z) instructions"
read -r v y z < <(count "$build/nn/libnn.so.0")
echo "  plain libnn: $v AVX, $y ymm, $z AVX-512 instructions"
[ "$v" -eq 0 ] || fail "libnn uses $v AVX instructions"
for l in "${built[@]}"; do
  read -r v y z < <(count "$build/autograd/glibc-hwcaps/$l/libautograd.so.0")
  echo "  $l libautograd: $v AVX, $y ymm, $z AVX-512 instructions"
  case "$l" in
    x86-64-v4) [ "$z" -gt 0 ] || fail "the x86-64-v4 copy has no AVX-512 instruction" ;;
    x86-64-v3) [ "$z" -eq 0 ] && [ "$y" -gt 0 ] || fail "the x86-64-v3 copy: $y ymm, $z AVX-512" ;;
    x86-64-v2) [ "$v" -eq 0 ] || fail "the x86-64-v2 copy uses $v AVX instructions" ;;
  esac
done
echo "ok"
