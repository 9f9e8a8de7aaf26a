#!/usr/bin/python3
"""Writes a GPT-2-shaped model with random weights as a Hugging Face GPT-2 directory.

    examples/make_gpt2_dir.py OUT --tokenizer DIR [--layers 12] [--heads 12] [--dim 768]
                              [--positions 1024] [--seed 0]

The defaults are GPT-2 small's shape (124M parameters, vocabulary 50257). The weights are drawn as
GPT-2 initialises them: every matrix (the token and position tables, the Conv1D weights of
attention and MLP) from N(0, 0.02), biases zero, LayerNorm gains one and shifts zero. OUT gets
config.json, model.safetensors (float32, the GPT-2 names, Conv1D weights stored [in, out]) and the
tokenizer files of DIR (encoder.json + vocab.bpe, or vocab.json + merges.txt), so that
`gpt eval --from OUT`, `gpt sample --from OUT` and `gpt finetune --from OUT` can use it
(docs/gpt.md). Real GPT-2 weights come as such a directory too; this script stands in for them
where they cannot be downloaded.

The safetensors file is written with json and struct: Debian packages PyTorch but not the
safetensors Python package.
"""
import argparse
import json
import os
import shutil
import struct

import torch

VOCAB = 50257


def gpt2_tensors(layers, dim, positions, generator):
    """The GPT-2 tensors by name, float32, in the order GPT-2 lists them."""
    normal = lambda *shape: torch.randn(*shape, generator=generator) * 0.02
    t = {"wte.weight": normal(VOCAB, dim), "wpe.weight": normal(positions, dim)}
    for i in range(layers):
        h = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            t[h + ln + ".weight"] = torch.ones(dim)
            t[h + ln + ".bias"] = torch.zeros(dim)
        for name, n_in, n_out in (("attn.c_attn", dim, 3 * dim), ("attn.c_proj", dim, dim),
                                  ("mlp.c_fc", dim, 4 * dim), ("mlp.c_proj", 4 * dim, dim)):
            t[h + name + ".weight"] = normal(n_in, n_out)  # Conv1D: [in, out]
            t[h + name + ".bias"] = torch.zeros(n_out)
    t["ln_f.weight"] = torch.ones(dim)
    t["ln_f.bias"] = torch.zeros(dim)
    return t


def write_safetensors(path, tensors):
    """float32 tensors, little-endian, in one file with a JSON header."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, a in tensors.items():
        size = a.numel() * 4
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for a in tensors.values():
            f.write(a.contiguous().numpy().astype("<f4").tobytes())


def copy_tokenizer(source, out):
    for pair in (("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt")):
        if all(os.path.isfile(os.path.join(source, name)) for name in pair):
            for name in pair:
                shutil.copy(os.path.join(source, name), out)
            return
    raise SystemExit(f"{source}: no encoder.json + vocab.bpe or vocab.json + merges.txt")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="directory to write (created)")
    p.add_argument("--tokenizer", required=True, help="directory of GPT-2's tokenizer files")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--positions", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.dim % a.heads != 0:
        raise SystemExit(f"--dim {a.dim} is not a multiple of --heads {a.heads}")
    os.makedirs(a.out, exist_ok=True)
    tensors = gpt2_tensors(a.layers, a.dim, a.positions, torch.Generator().manual_seed(a.seed))
    write_safetensors(os.path.join(a.out, "model.safetensors"), tensors)
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": a.layers,
              "n_head": a.heads, "n_embd": a.dim, "n_positions": a.positions,
              "n_ctx": a.positions, "vocab_size": VOCAB, "layer_norm_epsilon": 1e-5,
              "activation_function": "gelu_new", "bos_token_id": 50256, "eos_token_id": 50256}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    copy_tokenizer(a.tokenizer, a.out)
    count = sum(t.numel() for t in tensors.values())
    print(f"wrote {a.out}: {a.layers} layers, {a.heads} heads, n_embd {a.dim}, "
          f"{a.positions} positions, vocabulary {VOCAB}: {count} parameters")


if __name__ == "__main__":
    main()
