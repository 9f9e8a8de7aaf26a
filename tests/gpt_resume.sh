#!/usr/bin/env bash
# `gpt train` killed with SIGKILL in the middle of a run and resumed with --resume ends with the
# same bytes in its checkpoint as a run that was never stopped (model, and through the final
# validation loss in the metadata, everything that depends on optimizer moments, step, learning-rate
# schedule and the order of the batches).
#
#   tests/gpt_resume.sh path/to/gpt
set -euo pipefail
gpt=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# A tiny model, 14 steps; the training state is saved every 4 steps (after steps 4, 8, 12).
base=(train --steps 14 --layers 1 --heads 2 --dim 16 --context 16 --eval-every 7 --warmup 3
      --lr 3e-3 --seed 5 --save-every 4)
args=("${base[@]}" --batch 4)

"$gpt" "${args[@]}" --out "$dir/straight.safetensors" > "$dir/straight.log"
[ -f "$dir/straight.safetensors" ] || fail "the uninterrupted run wrote no checkpoint"

# Killed in the middle of step 10: the state of step 8 is the last one on disk.
set +e
"$gpt" "${args[@]}" --out "$dir/killed.safetensors" --kill-at-step 10 > "$dir/killed.log" 2>&1
status=$?
set -e
[ "$status" -eq 137 ] || fail "expected death by SIGKILL (status 137), got $status"
[ ! -e "$dir/killed.safetensors" ] || fail "the killed run wrote its final checkpoint"
[ -f "$dir/killed.state.safetensors" ] || fail "the killed run left no training state"

# A resumption with other options is refused and leaves the state as it was.
cp "$dir/killed.state.safetensors" "$dir/state.before"
if "$gpt" "${base[@]}" --batch 5 --out "$dir/killed.safetensors" --resume > "$dir/wrong.log" 2>&1
then
  fail "resuming with another --batch was accepted"
fi
grep -q "train.batch" "$dir/wrong.log" || fail "the refusal does not name train.batch: $(cat "$dir/wrong.log")"
cmp -s "$dir/killed.state.safetensors" "$dir/state.before" || fail "a refused resume changed the state"

"$gpt" "${args[@]}" --out "$dir/killed.safetensors" --resume > "$dir/resumed.log"
grep -q "resumed from .* after step 8" "$dir/resumed.log" || fail "did not resume after step 8"
cmp "$dir/straight.safetensors" "$dir/killed.safetensors" ||
  fail "the resumed run's checkpoint differs from the uninterrupted run's"
# The log lines of steps 9-14 (losses, learning rates; not the timings) are the same too.
strip() { grep '^step' "$1" | sed 's/  [0-9]* tokens\/s$//' | awk '$2 ~ /^(9|1[0-4])\// || $2 ~ /^ *(9|1[0-4])\//'; }
[ -n "$(strip "$dir/resumed.log")" ] || fail "no step lines after the resumption"
diff <(strip "$dir/straight.log") <(strip "$dir/resumed.log") || fail "the logged steps differ"
grep "^final val_loss" "$dir/resumed.log"
echo "OK: killed at step 10, resumed after step 8, checkpoint identical byte for byte"
