#!/usr/bin/python3
"""An independent check of nn::load_gpt2 / nn::save_gpt2 (nn/models/gpt2.h) against PyTorch.

Writes small GPT-2-shaped models in the Hugging Face layout (GPT-2's vocabulary of 50257, a few
layers of width 64, random weights): one F32 with the "transformer." prefix, the tied lm_head.weight
and the attention mask buffers; one F16 without prefix; one split over two files (F32 and BF16) with
a model.safetensors.index.json, its config giving n_ctx instead of n_positions and the erf GELU.
For each, the logits of our C++ model (tests/gpt2_logits.cpp) must match a GPT-2 forward written
here from the architecture (pre-LayerNorm blocks, causal attention, GELU MLP, tied head; float64)
to 1e-4 (max abs difference). Then the directory our save_gpt2 writes from it is read back here:
float32 tensors under the plain names, Conv1D weights [in, out], equal to what was read, a
config.json with the fields transformers' GPT2Config needs, and the same logits again.

    tests/gpt2_reference.py build/tests/gpt2_logits

Debian has neither the transformers nor the safetensors Python packages, so the safetensors files
are written and parsed here with json and numpy.
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

TOLERANCE = 1e-4
VOCAB = 50257

# ---- safetensors, by hand ----


def to_bf16_bits(a):
    """float32 array -> uint16 BF16 bits, rounded to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def encode(a, dtype):
    if dtype == "F32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(a, dtype="<f2").tobytes()
    if dtype == "BF16":
        return to_bf16_bits(a).astype("<u2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: list of (name, float32 array, dtype name)."""
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a, dtype in tensors:
        raw = encode(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def read_safetensors(path):
    """-> (metadata, {name: (dtype name, float32 numpy array)})"""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        raw = data[begin:end]
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: {name}: dtype {e['dtype']}")
        out[name] = (e["dtype"], a.reshape(e["shape"]).copy())
    return meta, out


def stored(a, dtype):
    """The float32 values a tensor of that dtype holds once read back."""
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return (to_bf16_bits(a).astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


# ---- random GPT-2 weights in the Hugging Face layout ----


def random_weights(rng, n_layer, n_embd, n_positions):
    C = n_embd
    w = lambda *shape, std=0.1: (rng.standard_normal(shape) * std).astype(np.float32)
    t = {"wte.weight": w(VOCAB, C), "wpe.weight": w(n_positions, C)}
    for i in range(n_layer):
        h = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            t[h + ln + ".weight"] = 1 + w(C)
            t[h + ln + ".bias"] = w(C)
        t[h + "attn.c_attn.weight"] = w(C, 3 * C)  # Conv1D: [in, out]
        t[h + "attn.c_attn.bias"] = w(3 * C, std=0.05)
        t[h + "attn.c_proj.weight"] = w(C, C)
        t[h + "attn.c_proj.bias"] = w(C, std=0.05)
        t[h + "mlp.c_fc.weight"] = w(C, 4 * C)
        t[h + "mlp.c_fc.bias"] = w(4 * C, std=0.05)
        t[h + "mlp.c_proj.weight"] = w(4 * C, C, std=0.05)
        t[h + "mlp.c_proj.bias"] = w(C, std=0.05)
    t["ln_f.weight"] = 1 + w(C)
    t["ln_f.bias"] = w(C)
    return t


# ---- the reference forward (float64) ----


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def gelu(x, form):
    if form == "tanh":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def reference_logits(t, cfg, ids):
    """t: {name without prefix: float32 array}; ids: list of token ids (one sequence)."""
    W = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in t.items()}
    C, H, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    form = "none" if cfg["activation_function"] == "gelu" else "tanh"
    T, D = len(ids), C // H
    x = W["wte.weight"][torch.tensor(ids)] + W["wpe.weight"][:T]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for i in range(cfg["n_layer"]):
        p = lambda name: W[f"h.{i}.{name}"]
        a = layer_norm(x, p("ln_1.weight"), p("ln_1.bias"), eps)
        q, k, v = (a @ p("attn.c_attn.weight") + p("attn.c_attn.bias")).split(C, dim=-1)
        q, k, v = (z.reshape(T, H, D).transpose(0, 1) for z in (q, k, v))  # [H, T, D]
        scores = (q @ k.transpose(1, 2)) / math.sqrt(D)
        att = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(0, 1).reshape(T, C)
        x = x + y @ p("attn.c_proj.weight") + p("attn.c_proj.bias")
        m = layer_norm(x, p("ln_2.weight"), p("ln_2.bias"), eps)
        m = gelu(m @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias"), form)
        x = x + m @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias")
    x = layer_norm(x, W["ln_f.weight"], W["ln_f.bias"], eps)
    return (x @ W["wte.weight"].T).numpy()


# ---- our side ----


def our_logits(exe, directory, ids, scratch):
    out = os.path.join(scratch, "logits.bin")
    r = subprocess.run([exe, "logits", directory, out] + [str(i) for i in ids], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: gpt2_logits on {directory}: {r.stderr.strip()}")
    T, V = map(int, r.stdout.split())
    return np.fromfile(out, dtype="<f4").reshape(T, V)


def compare(what, ours, ref):
    diff = float(np.max(np.abs(ours.astype(np.float64) - ref)))
    ok = ours.shape == ref.shape and diff <= TOLERANCE
    print(f"{what}: logits {list(ref.shape)}, max |ours - reference| = {diff:.3g}, "
          f"largest |logit| {float(np.max(np.abs(ref))):.3g}: {'ok' if ok else 'FAIL'}")
    return ok


# ---- the three directories ----


def write_model(directory, kind, rng):
    """Writes one test directory; returns (config, tensors as read back by a reader)."""
    os.makedirs(directory)
    n_layer, n_head, n_positions = {"prefixed": (2, 4, 128), "f16": (3, 2, 64),
                                    "sharded": (2, 4, 128)}[kind]
    t = random_weights(rng, n_layer, 64, n_positions)
    cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": n_layer,
           "n_head": n_head, "n_embd": 64, "vocab_size": VOCAB, "layer_norm_epsilon": 1e-5,
           "activation_function": "gelu_new", "n_positions": n_positions, "n_ctx": n_positions}
    if kind == "prefixed":
        entries = [("transformer." + k, a, "F32") for k, a in t.items()]
        entries.append(("lm_head.weight", t["wte.weight"], "F32"))
        for i in range(n_layer):
            causal = np.tril(np.ones((n_positions, n_positions), np.float32))[None, None]
            entries.append((f"transformer.h.{i}.attn.bias", causal, "F32"))
            entries.append((f"transformer.h.{i}.attn.masked_bias", np.array(-1e4, np.float32), "F32"))
        write_safetensors(os.path.join(directory, "model.safetensors"), entries)
        dtypes = {k: "F32" for k in t}
    elif kind == "f16":
        cfg["activation_function"] = "gelu_pytorch_tanh"
        write_safetensors(os.path.join(directory, "model.safetensors"), [(k, a, "F16") for k, a in t.items()])
        dtypes = {k: "F16" for k in t}
    else:
        cfg["activation_function"] = "gelu"
        cfg["layer_norm_epsilon"] = 1e-6
        del cfg["n_positions"]
        names = list(t)
        dtypes = {k: ("F32" if j < len(names) // 2 else "BF16") for j, k in enumerate(names)}
        weight_map = {}
        for part, dtype in ((1, "F32"), (2, "BF16")):
            file = f"model-0000{part}-of-00002.safetensors"
            mine = [k for k in names if dtypes[k] == dtype]
            write_safetensors(os.path.join(directory, file), [(k, t[k], dtype) for k in mine])
            weight_map.update({k: file for k in mine})
        with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(cfg, f)
    cfg.setdefault("n_positions", cfg["n_ctx"])
    return cfg, {k: stored(a, dtypes[k]) for k, a in t.items()}


def check_saved(directory, cfg, tensors):
    """The directory save_gpt2 wrote: layout, values and config.json. Returns a list of problems."""
    problems = []
    meta, saved = read_safetensors(os.path.join(directory, "model.safetensors"))
    if meta.get("format") != "pt":
        problems.append(f"metadata format is {meta.get('format')!r}, not 'pt'")
    if set(saved) != set(tensors):
        problems.append(f"tensor names differ: {sorted(set(saved) ^ set(tensors))[:5]}")
    for name, a in tensors.items():
        dtype, b = saved.get(name, (None, None))
        if dtype != "F32" or b is None or b.shape != a.shape or not np.array_equal(
                a.view(np.uint32), b.view(np.uint32)):
            problems.append(f"tensor {name} differs from what was read ({dtype})")
    with open(os.path.join(directory, "config.json")) as f:
        out = json.load(f)
    tanh = cfg["activation_function"] in ("gelu_new", "gelu_pytorch_tanh")
    expected = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": cfg["n_layer"],
                "n_head": cfg["n_head"], "n_embd": cfg["n_embd"], "vocab_size": VOCAB,
                "n_positions": cfg["n_positions"], "n_ctx": cfg["n_positions"],
                "layer_norm_epsilon": cfg["layer_norm_epsilon"],
                "activation_function": "gelu_new" if tanh else "gelu", "bos_token_id": 50256,
                "eos_token_id": 50256, "tie_word_embeddings": True}
    for key, value in expected.items():
        if out.get(key) != value:
            problems.append(f"config.json {key} is {out.get(key)!r}, expected {value!r}")
    return problems, out


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    exe = os.path.abspath(sys.argv[1])
    rng = np.random.default_rng(2025)
    ok = True
    with tempfile.TemporaryDirectory(prefix="gpt2_reference_") as scratch:
        for kind in ("prefixed", "f16", "sharded"):
            directory = os.path.join(scratch, kind)
            cfg, tensors = write_model(directory, kind, rng)
            T = min(cfg["n_positions"], 24) if kind != "f16" else cfg["n_positions"]
            ids = [int(i) for i in rng.integers(0, VOCAB, T)]
            ids[-1] = VOCAB - 1
            ref = reference_logits(tensors, cfg, ids)
            ours = our_logits(exe, directory, ids, scratch)
            ok &= compare(f"{kind} ({cfg['n_layer']} layers, {T} tokens)", ours, ref)

            resaved = directory + "-saved"
            r = subprocess.run([exe, "resave", directory, resaved], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL: resave of {kind}: {r.stderr.strip()}")
                ok = False
                continue
            problems, saved_cfg = check_saved(resaved, cfg, tensors)
            for p in problems:
                print(f"FAIL: {kind} saved by save_gpt2: {p}")
            ok &= not problems
            _, saved = read_safetensors(os.path.join(resaved, "model.safetensors"))
            ref2 = reference_logits({k: a for k, (_, a) in saved.items()}, saved_cfg, ids)
            ours2 = our_logits(exe, resaved, ids, scratch)
            ok &= compare(f"{kind} saved by save_gpt2", ours2, ref2)
            if not np.array_equal(ours, ours2):
                print(f"FAIL: {kind}: our logits after save_gpt2 differ from before")
                ok = False
    print("all agree" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
