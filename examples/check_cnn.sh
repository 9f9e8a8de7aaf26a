#!/bin/sh
# check_cnn.sh CNN_BINARY MIN_ACCURACY [ARGS...]: runs the cnn example and checks that its last line
# is exactly "test accuracy <fraction>" with the fraction at least MIN_ACCURACY.
exe=$1
min=$2
shift 2
out=$("$exe" "$@") || { echo "cnn exited with an error"; exit 1; }
echo "$out"
last=$(printf '%s\n' "$out" | tail -n 1)
acc=$(printf '%s\n' "$last" | sed -n 's/^test accuracy \([0-9][0-9.]*\)$/\1/p')
[ -n "$acc" ] || { echo "last line is not 'test accuracy <fraction>': '$last'"; exit 1; }
awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }' || { echo "accuracy $acc below $min"; exit 1; }
