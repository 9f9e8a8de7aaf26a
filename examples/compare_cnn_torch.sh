#!/usr/bin/env bash
# Trains LeNet-5 with examples/cnn and with the same recipe in PyTorch (examples/cnn_torch.py) on
# identical IDX bytes, over several seeds, and prints each test accuracy and, per data set, the
# mean, standard deviation, minimum and maximum of both.
#
#   examples/compare_cnn_torch.sh [BUILD_DIR] [SEEDS]        (defaults: build, "0 1 2 3 4")
#
# Data sets: the synthetic digits examples/cnn trains on by default (written by `cnn --write-data`,
# 3000 training and 1000 test images of 28x28) and, when Debian's python3-sklearn data file is
# there (or DIGITS_CSV names it), the UCI handwritten digits, 8x8, 1297 training and 500 test
# images (examples/digits_to_idx.py); only the file is needed, `apt-get download python3-sklearn`
# and `dpkg-deb -x` give it without installing the package. Needs python3-torch. Ours runs with
# OMP_NUM_THREADS=1 (accuracy does not depend on it; a shared machine runs it faster).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
seeds=${2:-"0 1 2 3 4"}
csv=${DIGITS_CSV:-/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sets=(synthetic)
"$build/examples/cnn" --write-data "$work/synthetic" >/dev/null
if [ -f "$csv" ]; then
  python3 "$root/examples/digits_to_idx.py" "$csv" "$work/digits" >/dev/null
  sets+=(digits)
else
  echo "no digits data at $csv: synthetic set only"
fi

accuracy() { tail -n 1 | sed -n 's/^test accuracy //p'; }
stats() {  # mean sd min max of the numbers on stdin
  awk '{ s += $1; q += $1 * $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1 }
       END { m = s / NR; v = NR > 1 ? (q - NR * m * m) / (NR - 1) : 0; if (v < 0) v = 0;
             printf "mean %.4f sd %.4f min %.4f max %.4f (%d seeds)", m, sqrt(v), lo, hi, NR }'
}

for set in "${sets[@]}"; do
  ours=() theirs=()
  for seed in $seeds; do
    a=$(OMP_NUM_THREADS=1 "$build/examples/cnn" --data "$work/$set" --seed "$seed" | accuracy)
    b=$(/usr/bin/python3 "$root/examples/cnn_torch.py" --data "$work/$set" --seed "$seed" | accuracy)
    echo "$set seed $seed: tapegrad $a pytorch $b"
    ours+=("$a") theirs+=("$b")
  done
  echo "$set tapegrad: $(printf '%s\n' "${ours[@]}" | stats)"
  echo "$set pytorch:  $(printf '%s\n' "${theirs[@]}" | stats)"
done
