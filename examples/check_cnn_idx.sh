#!/bin/sh
# check_cnn_idx.sh CNN_BINARY MIN_ACCURACY SIZE [ARGS...]: writes synthetic SIZE x SIZE digit images
# as IDX files (`cnn --write-data`, with the --train-size / --test-size given in ARGS), then trains
# on them through --data, the path real data takes (IDX reading, padding to 28x28 or adaptive
# pooling), and checks the output with check_cnn.sh (last line, accuracy floor).
exe=$1
min=$2
size=$3
shift 3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
sizes=$(printf '%s\n' "$@" | awk '/^--(train|test)-size$/ { o = $0; next } o { printf "%s %s ", o, $0; o = "" }')
# shellcheck disable=SC2086
"$exe" --write-data "$dir" --image-size "$size" $sizes || { echo "cnn --write-data failed"; exit 1; }
rest=$(printf '%s\n' "$@" | awk '/^--(train|test)-size$/ { skip = 1; next } skip { skip = 0; next } { printf "%s ", $0 }')
# shellcheck disable=SC2086
"$(dirname "$0")/check_cnn.sh" "$exe" "$min" --data "$dir" $rest
