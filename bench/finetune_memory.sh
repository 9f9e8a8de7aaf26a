#!/usr/bin/env bash
# Issue 26's fine-tuning memory table: peak RSS and step time of fine-tuning a GPT-2-shaped model
# at batch 4 x 256, ours (`build/bench/bench gpt2-finetune`) against PyTorch
# (bench/gpt2_finetune_torch.py), each configuration run alone under /usr/bin/time -v, ours and
# PyTorch's alternately, one process at a time.
#
#   bench/finetune_memory.sh [--rounds N] [--steps N] [--warmup N] [--rank R]
#                            [--settings "full lora lora-ckpt lora-ckpt-bf16"] [--no-torch]
#                            [--out DIR] [--report-only] SIZE...
#
# SIZE: 124m, 355m, 774m (GPT-2 small, medium, large shapes) or smoke (a 2-layer check).
# Settings: full (every weight trains, float32), lora (rank-R adapters on the attention and MLP
# projections, everything else frozen), lora-ckpt (and every block's activations recomputed in
# backward), lora-ckpt-bf16 (and mixed precision: the frozen weights stored in bfloat16, the
# forward under autocast to bfloat16, float32 master weights for the adapters; the same in both). Defaults: 1 round, 2 timed steps after 1 warm-up step, rank 8, all four settings.
# Peak RSS: "Maximum resident set size" of /usr/bin/time -v, the whole process (for PyTorch the
# interpreter and its libraries too). Step time: the median of the timed steps the program
# reports. Over several rounds each cell is the median of the rounds. Every run's output is kept in
# DIR (default /tmp/finetune-memory); --report-only prints the table of the runs already in DIR
# without running anything. Builds nothing: build build/bench/bench first (or set BENCH to the bench
# program of another build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=1 steps=2 warmup=1 rank=8 torch=1 out=/tmp/finetune-memory run=1
settings="full lora lora-ckpt lora-ckpt-bf16"
sizes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rank) rank=$2; shift 2 ;;
    --settings) settings=$2; shift 2 ;;
    --no-torch) torch=0; shift ;;
    --out) out=$2; shift 2 ;;
    --report-only) run=0; shift ;;
    124m|355m|774m|smoke) sizes+=("$1"); shift ;;
    *) echo "finetune_memory.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(124m 355m)
bench="${BENCH:-$root/build/bench/bench}"  # BENCH=path: another build's bench
mkdir -p "$out"

flags() {  # SIDE SETTING: the command-line flags of a setting, or "skip"
  case "$2" in
    full) echo "" ;;
    lora) echo "--lora $rank" ;;
    lora-ckpt) echo "--lora $rank --checkpoint" ;;
    lora-ckpt-bf16) echo "--lora $rank --checkpoint --bf16" ;;
    *) echo "finetune_memory.sh: unknown setting '$2'" >&2; exit 2 ;;
  esac
}

# measure SIDE SIZE SETTING ROUND: runs one configuration, appends "peak_kib median_us" to its file.
measure() {
  local f; f=$(flags "$1" "$3")
  [ "$f" = skip ] && return 0
  local log="$out/$1-$2-$3-r$4"
  local cmd=("$bench" gpt2-finetune)
  [ "$1" = torch ] && cmd=(/usr/bin/python3 "$root/bench/gpt2_finetune_torch.py")
  # shellcheck disable=SC2086
  if ! env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/time -v "${cmd[@]}" --size "$2" $f \
      --steps "$steps" --warmup "$warmup" >"$log.out" 2>"$log.err"; then
    echo "finetune_memory.sh: $1 $2 $3 failed, see $log.err" >&2
    return 0
  fi
  local kib us
  kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log.err")
  us=$(tail -1 "$log.out" | awk '{print $3}')
  echo "$kib $us" >>"$out/$1-$2-$3.txt"
  echo "  $1 $2 $3 round $4: peak $((kib / 1024)) MiB, step $(awk -v u="$us" 'BEGIN {printf "%.0f", u / 1000}') ms" >&2
}

runs() {
  [ -x "$bench" ] || { echo "finetune_memory.sh: $bench not built (ninja -C build bench/bench)" >&2; exit 1; }
  [ -x /usr/bin/time ] || { echo "finetune_memory.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
  for s in "${sizes[@]}"; do for c in $settings; do rm -f "$out"/{ours,torch}-"$s-$c".txt; done; done
  echo "# $(lscpu | awk -F': *' '/Model name/ {print $2}'), $(nproc) CPUs; $(uptime)" >&2
  for r in $(seq 1 "$rounds"); do
    for s in "${sizes[@]}"; do
      for c in $settings; do
        measure ours "$s" "$c" "$r"
        if [ "$torch" = 1 ]; then measure torch "$s" "$c" "$r"; fi
      done
    done
  done
  echo "# after the runs: $(uptime)" >&2
}
[ "$run" = 1 ] && runs

# med SIDE SIZE SETTING COLUMN: the median over the rounds of a column (1 peak KiB, 2 step us), or
# empty if there is no run.
med() {
  local f="$out/$1-$2-$3.txt"
  [ -s "$f" ] || return 0
  awk -v c="$4" '{print $c}' "$f" | sort -g |
    awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
fmt() {  # VALUE DIVISOR: VALUE / DIVISOR with no decimals, or n/a
  if [ -z "$1" ]; then echo n/a; else awk -v v="$1" -v d="$2" 'BEGIN {printf "%.0f", v / d}'; fi
}
ratio() {  # A B: A / B with 3 decimals, or empty
  if [ -z "$1" ] || [ -z "$2" ]; then echo ""; else awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; fi
}

echo
echo "| size | setting | ours peak MiB | PyTorch peak MiB | ours/PyTorch | ours step ms | PyTorch step ms | ours/PyTorch | ours peak / ours full float32 peak | PyTorch peak / PyTorch full float32 peak |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for s in "${sizes[@]}"; do
  of=$(med ours "$s" full 1) tf=$(med torch "$s" full 1)
  for c in $settings; do
    op=$(med ours "$s" "$c" 1) tp=$(med torch "$s" "$c" 1)
    ot=$(med ours "$s" "$c" 2) tt=$(med torch "$s" "$c" 2)
    echo "| $s | $c | $(fmt "$op" 1024) | $(fmt "$tp" 1024) | $(ratio "$op" "$tp") |" \
      "$(fmt "$ot" 1000) | $(fmt "$tt" 1000) | $(ratio "$ot" "$tt") | $(ratio "$op" "$of") |" \
      "$(ratio "$tp" "$tf") |"
  done
done
echo
echo "Where our bytes go (the last round's runs, bench gpt2-finetune's memory line):"
for s in "${sizes[@]}"; do
  for c in $settings; do
    f=$(ls "$out/ours-$s-$c"-r*.out 2>/dev/null | tail -1)
    [ -n "$f" ] && [ -s "$f" ] && echo "  $s $c: $(grep -h 'memory:' "$f" | sed 's/^gpt2-finetune memory: //')"
  done
done
