#!/usr/bin/env bash
# Where one workload's time goes: samples `build/bench/bench <workload>` with `perf record` (the
# cpu-clock software event, which works without hardware counters) and sorts the samples into
# GEMM, convolution and pooling (im2col, col2im, max-pool), elementwise, softmax/LayerNorm/loss,
# optimizer, OpenMP (barriers and spinning), memory, and engine (tape, nodes, tensors, reference
# counts). Prints one line per category with its share.
#
#   bench/profile.sh mlp784|gpt-mini|tiny|cnn [--steps N]
#
# Needs Debian's linux-perf (installed if missing). Run it on an otherwise idle machine: under
# contention OpenMP's waiting threads dominate every profile.
set -euo pipefail
cd "$(dirname "$0")/.."
workload=${1:?usage: bench/profile.sh WORKLOAD [--steps N]}
shift
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
scripts/build >/dev/null
data=$(mktemp)
trap 'rm -f "$data"' EXIT
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE perf record -q -e cpu-clock -F 2000 -o "$data" \
  build/bench/bench "$workload" "$@" | tail -1
perf report -i "$data" --sort dso,sym --stdio 2>/dev/null | awk '
  /^#/ || NF < 3 { next }
  {
    share = $1; sub(/%/, "", share); dso = $2; line = $0
    if (dso ~ /libdnnl|libopenblas/ || line ~ /\[JIT\]/ || line ~ /small_gemm|Gemm/) c = "GEMM (oneDNN, OpenBLAS, own small loop)"
    else if (dso ~ /libgomp/) c = "OpenMP runtime (barriers, waiting threads)"
    else if (line ~ /im2col|col2im|conv_input_kernel|conv_weight_kernel|conv_forward_kernel|max_pool/) c = "convolution and pooling (im2col, col2im, max-pool)"
    else if (line ~ /layer_norm|softmax|cross_entropy|exp_shifted|row_sum|row_max|map_row/) c = "softmax, LayerNorm, loss"
    else if (line ~ /adam_step|sgd_step|update_elements/) c = "optimizer step"
    else if (line ~ /run_rows|kernels::map|reduce|gelu|relu|tanh|elementwise|for_each_row|copy_/) c = "elementwise and reductions"
    else if (line ~ /malloc|free|memset|memcpy|memmove|Storage|buffer|page_fault|clear_page/) c = "memory"
    else if (dso ~ /kernel/) c = "kernel (other)"
    else c = "engine (tape, nodes, tensors, other)"
    total[c] += share
  }
  END { for (c in total) printf "%6.1f%%  %s\n", total[c], c }' | sort -rn
