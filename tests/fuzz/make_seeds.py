#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/: small valid files
of every kind each reader accepts (and a few near misses), so the fuzzer starts from deep inside
the formats. Run from anywhere; pass the path of a built `gpt` example to add real GPT checkpoints
and a training state.

    tests/fuzz/make_seeds.py [build/examples/gpt]
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None, checksum=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data = {}, b""
    meta = dict(metadata or {})
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if checksum:
        meta["tapegrad.data_crc32"] = "%08x" % (zlib.crc32(data) & 0xFFFFFFFF)
    if meta:
        header = {"__metadata__": meta, **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def strip_checksum(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    header.get("__metadata__", {}).pop("tapegrad.data_crc32", None)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + n:]


def npy(descr, shape, raw, fortran=False, version=1):
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
        descr, "True" if fortran else "False", "".join("%d, " % s for s in shape).rstrip(" ")
        if len(shape) != 1 else "%d," % shape[0])
    pre = 10 if version == 1 else 12
    while (pre + len(d) + 1) % 64:
        d += " "
    d += "\n"
    head = b"\x93NUMPY" + bytes([version, 0])
    head += struct.pack("<H" if version == 1 else "<I", len(d))
    return head + d.encode() + raw


def idx(magic, dims, raw):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + raw


# The GPT-2 tokenizer's seeds: the same tiny vocabulary as tests/fuzz/fuzz_tokenizer.h (the bytes,
# one token per merge, <|endoftext|>), written here from GPT-2's bytes-to-unicode rule.
TOKENIZER_MERGES = [(b" ", b"t"), (b"h", b"e"), (b" t", b"he"), (b"i", b"n"), (b"in", b"g"),
                    (b"a", b"a"), (b"\xc3", b"\xa9"), (b"1", b"2")]


def token_form(bs):
    printable = set(range(0x21, 0x7f)) | set(range(0xa1, 0xad)) | set(range(0xae, 0x100))
    others = [b for b in range(256) if b not in printable]
    return "".join(chr(b) if b in printable else chr(0x100 + others.index(b)) for b in bs)


def tokenizer_seeds():
    tokens = [bytes([b]) for b in range(256)] + [a + b for a, b in TOKENIZER_MERGES]
    vocab = {token_form(t): i for i, t in enumerate(tokens)}
    vocab["<|endoftext|>"] = len(tokens)
    put("tokenizer_vocab", "vocab", json.dumps(vocab, ensure_ascii=False).encode())
    put("tokenizer_vocab", "vocab_ascii_escapes", json.dumps(vocab).encode())
    put("tokenizer_vocab", "vocab_sorted_indented",
        json.dumps(vocab, ensure_ascii=False, indent=2, sort_keys=True).encode())
    put("tokenizer_vocab", "vocab_no_eos",
        json.dumps({k: v for k, v in vocab.items() if k != "<|endoftext|>"}).encode())
    dup = json.dumps(vocab).replace('"aa": 261', '"aa": 260').encode()
    put("tokenizer_vocab", "vocab_duplicate_id", dup)
    lines = [token_form(a) + " " + token_form(b) for a, b in TOKENIZER_MERGES]
    put("tokenizer_merges", "merges", ("#version: 0.2\n" + "\n".join(lines) + "\n").encode())
    put("tokenizer_merges", "merges_no_header_crlf", ("\r\n".join(reversed(lines))).encode())
    put("tokenizer_merges", "merges_unknown_token", ("#version: 0.2\nh e\nhe q\n").encode())


def main():
    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    f64 = lambda *v: struct.pack("<%dd" % len(v), *v)
    i64 = lambda *v: struct.pack("<%dq" % len(v), *v)

    # safetensors
    put("safetensors", "f32_meta", safetensors([("w", "F32", [2, 2], f32(1, 2, 3, 4))], {"epoch": "3"}))
    put("safetensors", "f32_no_checksum",
        safetensors([("w", "F32", [2, 2], f32(1, 2, 3, 4))], {"epoch": "3"}, checksum=False))
    put("safetensors", "all_dtypes", safetensors([
        ("a", "F64", [], f64(2.5)), ("b", "I64", [2], i64(-1, 7)), ("c", "BOOL", [3], b"\x01\x00\x01"),
        ("d", "F16", [2], struct.pack("<2H", 0x3C00, 0xC000)), ("e", "BF16", [1], struct.pack("<H", 0x3FC0)),
        ("f", "I32", [1], struct.pack("<i", -5)), ("g", "I16", [1], struct.pack("<h", 300)),
        ("h", "I8", [1], b"\xfd"), ("i", "U8", [2], b"\xc8\x00")]))
    put("safetensors", "empty_tensor", safetensors([("z", "F32", [0, 3], b""), ("s", "F32", [1], f32(1))]))
    put("safetensors", "no_tensors", safetensors([], {"k": "v"}))

    # IDX: images [count, rows, cols] and labels [count], plain and gzip-compressed
    img = idx(0x803, [2, 3, 3], bytes(range(0, 180, 10)))
    lab = idx(0x801, [4], bytes([0, 1, 9, 255]))
    put("idx", "images", img)
    put("idx", "labels", lab)
    put("idx", "images.gz", gzip.compress(img, mtime=0))
    put("idx", "labels.gz", gzip.compress(lab, mtime=0))
    put("idx", "empty_images", idx(0x803, [0, 28, 28], b""))

    # .npy
    put("npy", "f4_c", npy("<f4", [2, 3], f32(1, 2, 3, 4, 5, 6)))
    put("npy", "f8_fortran", npy("<f8", [2, 3], f64(1, 4, 2, 5, 3, 6), fortran=True))
    put("npy", "i8_v2", npy("<i8", [3], i64(1, -2, 3), version=2))
    put("npy", "b1", npy("|b1", [4], b"\x01\x00\x02\x00"))
    put("npy", "scalar", npy("<f8", [], f64(3.5)))
    put("npy", "empty", npy("<f4", [0, 4], b""))

    tokenizer_seeds()
    # Hugging Face GPT-2 directories (fuzz_gpt2_config, fuzz_gpt2_index; tests/fuzz/gpt2_dir.h):
    # configurations and indexes fitting the targets' tiny model (vocabulary 8, 1 layer, 2 heads,
    # n_embd 4, n_positions 4; shards model-0000{1,2}-of-00002.safetensors, ln_f.* in the second).
    sizes = {"vocab_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 4}
    put("gpt2_config", "minimal", json.dumps({**sizes, "n_positions": 4}).encode())
    put("gpt2_config", "transformers", json.dumps({
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", **sizes, "n_positions": 4,
        "n_ctx": 4, "n_inner": None, "activation_function": "gelu_new", "resid_pdrop": 0.1,
        "embd_pdrop": 0.1, "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-05, "initializer_range": 0.02,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "use_cache": True, "bos_token_id": 50256,
        "eos_token_id": 50256, "task_specific_params": {"text-generation": {"do_sample": True}},
        "torch_dtype": "float32"}, indent=2).encode())
    put("gpt2_config", "erf_n_ctx", json.dumps({
        **sizes, "n_ctx": 4, "activation_function": "gelu", "layer_norm_epsilon": 1e-6}).encode())
    first = ["wte.weight", "wpe.weight"] + ["h.0.%s.%s" % (m, p) for m in (
        "ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj") for p in ("weight", "bias")]
    weight_map = {n: "model-00001-of-00002.safetensors" for n in first}
    weight_map.update({n: "model-00002-of-00002.safetensors" for n in ("ln_f.weight", "ln_f.bias")})
    put("gpt2_index", "index", json.dumps({"metadata": {"total_size": 1088}, "weight_map": weight_map},
                                          indent=2).encode())
    put("gpt2_index", "index_compact", json.dumps({"weight_map": weight_map}, separators=(",", ":")).encode())

    # GPT checkpoints: a tiny model trained one step, its training state, and copies without the
    # checksum (so that mutations of the data are not all stopped by it).
    if len(sys.argv) > 1:
        gpt = sys.argv[1]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "tiny.safetensors")
            subprocess.run([gpt, "train", "--steps", "2", "--layers", "1", "--heads", "1", "--dim", "2",
                            "--context", "2", "--batch", "1", "--eval-every", "0", "--save-every", "1",
                            "--out", out], check=True, stdout=subprocess.DEVNULL)
            for name, path in [("model", out), ("train_state", os.path.join(tmp, "tiny.state.safetensors"))]:
                blob = open(path, "rb").read()
                put("gpt_checkpoint", name, blob)
                put("gpt_checkpoint", name + "_no_checksum", strip_checksum(blob))


if __name__ == "__main__":
    main()
