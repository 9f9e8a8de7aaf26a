#!/usr/bin/env bash
# Measures the engine against the peers of ../shared/WORKLOADS.md, alternately (A B A B ...), and
# prints the ratio of medians for each workload.
#
#   bench/compare.sh [workload...] [--rounds N]     (default: the first five workloads, 3 rounds, then
#                                                   the portability rows)
#   bench/compare.sh --memory [workload...]        peak RSS of whole runs (/usr/bin/time -v), ours and
#                                                  the peers' (default mlp784, over 5,000 steps)
#   bench/compare.sh --no-portability ...          without the portability rows
#   bench/compare.sh --no-build ...                measure build/ as it is (no scripts/build first)
#   bench/compare.sh --baseline OLD/bench ...      also a row per workload against another build's
#                                                  bench (e.g. of an earlier commit): before / after
#
# Workloads: perop tiny mlp784 cnn gpt-mini (the default), gpt2-124m (peers: PyTorch and llm.c),
# gpt2-generate (peers: PyTorch, and the weight-read bound: the time to read GPT-2 small's float32
# weights once, bench gpt2-weight-read).
#
# With mlp784, a last block: bench/step_floor (our step, a step written by hand and the GEMM floor,
# interleaved in one process), 10 x --rounds rounds.
#
# Portability rows: our command runs with OPENBLAS_CORETYPE=Prescott, which makes OpenBLAS pick its
# SSE3 kernels as it does by itself on CPUs it does not know; the peers run as usual. Our float32
# GEMMs go to oneDNN, so these rows show whether anything on the hot path still depends on
# OpenBLAS's CPU detection. The header names the CPU and the kernel OpenBLAS picks on it.
#
# Peers are built once into $PEERS (default /tmp/tapegrad-peers) from ../shared/peers; none of them
# is part of the project. Needs Debian's python3-torch, python3-numpy and libtorch-dev (installed
# with apt-get if missing). The OpenBLAS pinning variables of the shared machines are unset for the
# measured commands only, as WORKLOADS.md asks.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
peers_src=${PEERS_SRC:-$root/../shared/peers}
peers=${PEERS:-/tmp/tapegrad-peers}
rounds=3
memory=0
portability=1
build=1
baseline=
workloads=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --memory) memory=1; shift ;;
    --no-portability) portability=0; shift ;;
    --no-build) build=0; shift ;;
    --baseline) baseline=$2; shift 2 ;;
    *) workloads+=("$1"); shift ;;
  esac
done
[ ${#workloads[@]} -eq 0 ] && workloads=(perop tiny mlp784 cnn gpt-mini)

need=()
for p in python3-torch python3-numpy libtorch-dev libopenblas-dev libdnnl-dev time; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}"; fi
[ "$build" = 1 ] && scripts/build >/dev/null

mkdir -p "$peers"
cp -ru "$peers_src"/* "$peers"/
[ -x "$peers/gemm_probe" ] || g++ -O2 "$peers/gemm_probe.cpp" -o "$peers/gemm_probe" -lopenblas -ldnnl
[ -x "$peers/peak_probe" ] || g++ -O2 -march=native -fopenmp "$peers/peak_probe.cpp" -o "$peers/peak_probe"
[ -x "$peers/llmc/bench_llmc" ] || (cd "$peers/llmc" && gcc -Ofast -march=native -fopenmp -DOMP bench_llmc.c -o bench_llmc -lm)
[ -x "$peers/train_libtorch" ] || g++ -O2 -std=c++17 "$peers/train_libtorch.cpp" -o "$peers/train_libtorch" \
  -I/usr/include/torch/csrc/api/include -ltorch -ltorch_cpu -lc10

run() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@" 2>/dev/null | tail -1 | awk '{print $3}'; }
ours() { run "$root/build/bench/bench" "$1" --steps "$2"; }
ours_prescott() { run OPENBLAS_CORETYPE=Prescott "$root/build/bench/bench" "$1" --steps "$2"; }

# peer commands per workload: "label|command"
peer_list() {
  [ -n "$baseline" ] && echo "before|$baseline $1 --steps"
  case "$1" in
    perop) echo "libtorch|$peers/train_libtorch perop" ;;
    tiny) echo "pytorch|/usr/bin/python3 $peers/train_torch.py tiny" ;;
    mlp784) echo "pytorch|/usr/bin/python3 $peers/train_torch.py mlp784"
            echo "gemm floor|$peers/gemm_probe" ;;
    cnn) echo "pytorch|/usr/bin/python3 $peers/train_torch.py cnn" ;;
    gpt-mini) echo "pytorch|/usr/bin/python3 $peers/gpt_torch.py" ;;
    gpt2-124m) echo "pytorch|/usr/bin/python3 $peers/gpt2_torch.py"
               echo "llm.c|env OMP_NUM_THREADS=$(nproc) $peers/llmc/bench_llmc" ;;
    gpt2-generate) echo "pytorch|/usr/bin/python3 $peers/gpt2_torch.py generate"
                   echo "weight read|$root/build/bench/bench gpt2-weight-read --steps" ;;
  esac
}
steps_for() { case "$1" in perop) echo 2000 ;; tiny) echo 2000 ;; mlp784) echo 300 ;; cnn) echo 100 ;; gpt-mini) echo 30 ;;
  gpt2-124m) echo 5 ;; gpt2-generate) echo 64 ;; esac; }

spread() { sort -g | awk '{a[NR]=$1} END {printf "%.3f / %.3f / %.3f us", a[1], (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2, a[NR]}'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

if [ "$memory" = 1 ]; then
  # Peak RSS of whole runs, every process measured alike by /usr/bin/time -v (the interpreter
  # included for the Python peers). mlp784 (the default) runs 5,000 steps, to show that memory stays
  # flat; gpt2-124m 5 timed steps after the untimed ones, as in its timing rows.
  [ "${workloads[*]}" = "perop tiny mlp784 cnn gpt-mini" ] && workloads=(mlp784)
  peak_kib() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/time -v "$@" 2>&1 >/dev/null |
    sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p'; }
  printf '%-10s %-11s %14s %10s\n' workload who "peak RSS (KiB)" "ours/peer"
  for w in "${workloads[@]}"; do
    n=$(steps_for "$w")
    [ "$w" = mlp784 ] && n=5000
    ours_kib=$(peak_kib "$root/build/bench/bench" "$w" --steps "$n")
    printf '%-10s %-11s %14s %10s\n' "$w" ours "$ours_kib" ""
    while IFS='|' read -r peer cmd; do
      case "$peer" in "gemm floor"|"weight read") continue ;; esac
      # shellcheck disable=SC2086
      kib=$(peak_kib $cmd $n)
      printf '%-10s %-11s %14s %10.3f\n' "$w" "$peer" "$kib" "$(awk -v a="$ours_kib" -v b="$kib" 'BEGIN {print a / b}')"
    done < <(peer_list "$w")
  done
  exit 0
fi

cpu=$(lscpu | sed -n 's/^Model name: *//p')
fms=$(awk -F': ' '/^cpu family/ {f=$2} /^model\t/ {m=$2} /^stepping/ {s=$2} END {print "family " f " model " m " stepping " s}' /proc/cpuinfo)
kernel=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_VERBOSE=2 "$root/build/bench/bench" tiny --steps 1 2>&1 |
  sed -n 's/^Core: //p' | head -1)
peak=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$peers/peak_probe" | tail -1 | awk '{print $2}')
echo "CPU: $cpu ($fms), $(nproc) cores; OpenBLAS picks its ${kernel:-unknown} kernels; fp32 peak $peak GFLOP/s"

# compare LABEL OURS_FN WORKLOAD: one table row per peer of the workload.
compare() {
  local label=$1 ours_fn=$2 w=$3 n peer cmd a b ma mb
  n=$(steps_for "$w")
  while IFS='|' read -r peer cmd; do
    [ "$label" = portable ] && [ "$w" = mlp784 ] && [ "$peer" != "gemm floor" ] && continue
    [ "$label" = portable ] && [ "$peer" = before ] && continue
    a=(); b=()
    local r=$rounds
    # perop's median moves from one process to the next by more than its rounds show: 10 runs,
    # reported as a spread.
    [ "$w" = perop ] && [ "$r" -lt 10 ] && r=10
    for ((i = 0; i < r; i++)); do
      a+=("$($ours_fn "$w" "$n")")
      # shellcheck disable=SC2086
      b+=("$(run $cmd $n)")
    done
    ma=$(printf '%s\n' "${a[@]}" | median)
    mb=$(printf '%s\n' "${b[@]}" | median)
    printf '%-9s %-9s %-11s %12.3f %12.3f %8.3f\n' "$w" "$label" "$peer" "$ma" "$mb" \
      "$(awk -v a="$ma" -v b="$mb" 'BEGIN {print a / b}')"
    [ "$w" = gpt2-124m ] && last_gpt2_us=$ma
    if [ "$w" = perop ]; then
      printf '%-9s %-9s %-11s   spread of %d runs (min / median / max): ours %s, %s %s\n' "$w" "$label" \
        "$peer" "$r" "$(printf '%s\n' "${a[@]}" | spread)" "$peer" "$(printf '%s\n' "${b[@]}" | spread)"
    fi
  done < <(peer_list "$w")
}

# The fraction of the fp32 peak for gpt2-124m: its FLOPs per step (bench prints them) over the
# median step.
peak_fraction() {
  local flops
  flops=$("$root/build/bench/bench" gpt2-124m --steps 1 2>/dev/null | sed -n 's/^gpt2-124m flops \([0-9.]*\) GFLOP.*/\1/p')
  awk -v f="$flops" -v us="$1" -v p="$peak" 'BEGIN {
    printf "gpt2-124m: %.1f GFLOP per step at %.0f us: %.0f GFLOP/s, %.1f%% of the fp32 peak (%s GFLOP/s)\n",
      f, us, f / us * 1e6, 100 * f / us * 1e6 / p, p }'
}

printf '%-9s %-9s %-11s %12s %12s %8s\n' workload run peer "ours (us)" "peer (us)" ratio
for w in "${workloads[@]}"; do
  [ "$w" = cnn ] && ! "$root/build/bench/bench" cnn --steps 1 >/dev/null 2>&1 && continue
  compare default ours "$w"
done
[ -n "${last_gpt2_us:-}" ] && peak_fraction "$last_gpt2_us"
if [ "$portability" = 1 ]; then
  for w in mlp784 gpt-mini; do
    printf '%s\n' "${workloads[@]}" | grep -qx "$w" && compare portable ours_prescott "$w"
  done
fi
# mlp784 against the floor once more, interleaved in one process with a step written by hand
# (bench/step_floor): the vCPUs' speed phases move both alike, so the per-round ratio is steadier.
if printf '%s\n' "${workloads[@]}" | grep -qx mlp784; then
  echo
  echo "mlp784 in one process, 10 steps of each in turn per round (bench/step_floor $((rounds * 10))):"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$root/build/bench/step_floor" $((rounds * 10)) | tail -8
fi
