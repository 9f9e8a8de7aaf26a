#!/usr/bin/env bash
# Where one training step's wall time goes, region by region: runs `build/bench/bench WORKLOAD`
# with bench/region_trace.c preloaded, which times every OpenMP parallel region and each thread's
# share of it, and prints for one step (medians over the second half of the steps): each region's
# function, the serial time before it (the other threads wait), its duration and the time each of
# the first two threads spent in it. A large gap between the two threads' times means one waits
# for the other; a large serial time means the other threads are idle.
#
#   bench/regions.sh mlp784|tiny|gpt-mini|cnn [--steps N]     (default 1000 steps)
#   bench/regions.sh step_floor:K [--steps N]                 variant K of bench/step_floor
#   BUILD_DIR=build-dev bench/regions.sh ...                   trace another (already built) build
#
# The last region of a step is taken to be the optimizer's update (true of every workload here);
# steps are cut after each occurrence of the last region's function.
set -euo pipefail
cd "$(dirname "$0")/.."
workload=${1:?usage: bench/regions.sh WORKLOAD [--steps N]}
shift
steps=1000
if [ "${1:-}" = --steps ]; then steps=${2:?--steps needs a number}; fi
build=${BUILD_DIR:-build}
[ "$build" = build ] && scripts/build >/dev/null
shim=$build/bench/region_trace.so
gcc -O2 -Wall -Wextra -shared -fPIC -fopenmp bench/region_trace.c -o "$shim" -ldl
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# step_floor:K traces variant K of bench/step_floor (0 the floor, 1 the engine, 2-5 written by hand).
cmd=("$build"/bench/bench "$workload" --steps "$steps")
case "$workload" in step_floor:*) cmd=("$build"/bench/step_floor $(((steps + 9) / 10)) "${workload#step_floor:}") ;; esac
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE REGION_TRACE_OUT="$out" LD_PRELOAD="$(pwd)/$shim" \
  "${cmd[@]}" | tail -1
python3 - "$out" <<'PY'
import statistics, subprocess, sys
rows = [line.split() for line in open(sys.argv[1])]
if len(rows) < 4:
    sys.exit("fewer than 4 parallel regions: nothing to show")
last = rows[-1][7]
ends = [i for i, r in enumerate(rows) if r[7] == last]
steps = [rows[a + 1:b + 1] for a, b in zip(ends, ends[1:])]
steps = [s for s in steps[len(steps) // 2:] if [r[7] for r in s] == [r[7] for r in steps[-1]]]
if not steps:
    sys.exit("no steps of a repeating region pattern found")
def name(fn):
    obj, off = fn.rsplit("+", 1)
    try:
        text = subprocess.run(["addr2line", "-f", "-C", "-e", obj, off], capture_output=True,
                              text=True, check=True).stdout.splitlines()[0]
    except Exception:
        return fn.split("/")[-1]
    if "libdnnl" in obj:
        return "(inside oneDNN: a GEMM it threads itself)"
    text = text.replace("(anonymous namespace)::", "").replace("{lambda()#1}::", "")
    text = text.split("(")[0].strip()
    return (text[:60] + "...") if len(text) > 63 else text
def med(values):
    return statistics.median(values)
def since(r, a, b):
    return float(r[b]) - float(r[a]) if float(r[a]) > 0 else 0.0
first = {id(s): rows.index(s[0]) for s in steps}
print(f"{len(steps)} steps of {len(steps[0])} regions; times in us, medians")
print(f"{'region':<66} {'serial before':>13} {'duration':>9} {'thread 0':>9} {'thread 1':>9}")
total_gap = total = 0.0
for k in range(len(steps[0])):
    gap = med(float(s[k][1]) - float((s[k - 1] if k else rows[first[id(s)] - 1])[2]) for s in steps)
    dur = med(float(s[k][2]) - float(s[k][1]) for s in steps)
    t0 = med(since(s[k], 3, 4) for s in steps)
    t1 = med(since(s[k], 5, 6) for s in steps)
    total_gap += gap
    total += dur
    print(f"{name(steps[0][k][7]):<66} {gap:13.1f} {dur:9.1f} {t0:9.1f} {t1:9.1f}")
step = med(float(s[-1][2]) - float(rows[first[id(s)] - 1][2]) for s in steps)
print(f"step {step:.1f} us: regions {total:.1f}, serial {total_gap:.1f} (sums of medians)")
PY
