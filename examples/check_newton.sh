#!/bin/sh
# check_newton.sh NEWTON_BINARY MAX_DIFFERENCE: runs the newton example (into a temporary folder)
# and checks that it succeeds and that its last line is exactly
# "hessian max abs difference hand vs engine: <x>" with x at most MAX_DIFFERENCE.
exe=$1
max=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
out=$("$exe" "$dir" --gd-cap 5000) || { echo "$out"; echo "newton exited with an error"; exit 1; }
echo "$out"
last=$(printf '%s\n' "$out" | tail -n 1)
x=$(printf '%s\n' "$last" |
  sed -n 's/^hessian max abs difference hand vs engine: \([0-9][0-9.]*\(e[-+][0-9]*\)\{0,1\}\)$/\1/p')
[ -n "$x" ] || { echo "last line is not 'hessian max abs difference hand vs engine: <x>': '$last'"; exit 1; }
awk -v x="$x" -v m="$max" 'BEGIN { exit !(x + 0 <= m + 0) }' || { echo "difference $x above $max"; exit 1; }
for f in newton_iterations.svg newton_time.svg newton.csv; do
  [ -s "$dir/$f" ] || { echo "newton did not write $f"; exit 1; }
done
echo "ok: hand-derived and engine Hessians differ by $x <= $max"
