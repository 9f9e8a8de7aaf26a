#!/usr/bin/env python3
"""Writes a real handwritten-digit set as MNIST-named IDX files, for examples/cnn --data and
examples/cnn_torch.py (both then read identical bytes).

    python3 examples/digits_to_idx.py DIGITS_CSV_GZ OUT_DIR [--test 500]

DIGITS_CSV_GZ is the UCI optical-recognition digits set as Debian's python3-sklearn ships it
(/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz: 1797 rows of 64 pixels in
0..16 and a label). The images are 8x8; pixels are scaled to bytes (round(p * 255 / 16)). The last
--test rows become the test set, the others the training set, in the file's order.
"""
import argparse
import gzip
import os
import struct


def write_idx(path, dims, values):
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, len(dims)))
        f.write(struct.pack(">" + "I" * len(dims), *dims))
        f.write(bytes(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("out")
    ap.add_argument("--test", type=int, default=500)
    a = ap.parse_args()
    with gzip.open(a.csv, "rt") as f:
        rows = [[int(float(v)) for v in line.split(",")] for line in f if line.strip()]
    if not rows or any(len(r) != 65 for r in rows):
        raise SystemExit(f"digits_to_idx: {a.csv}: expected rows of 64 pixels and a label")
    if not 0 < a.test < len(rows):
        raise SystemExit(f"digits_to_idx: --test must be between 1 and {len(rows) - 1}")
    os.makedirs(a.out, exist_ok=True)
    for name, part in (("train", rows[:-a.test]), ("t10k", rows[-a.test:])):
        pixels = [min(255, round(p * 255 / 16)) for r in part for p in r[:64]]
        write_idx(os.path.join(a.out, f"{name}-images-idx3-ubyte"), (len(part), 8, 8), pixels)
        write_idx(os.path.join(a.out, f"{name}-labels-idx1-ubyte"), (len(part),), [r[64] for r in part])
    print(f"wrote {len(rows) - a.test} training and {a.test} test 8x8 images to {a.out}")


if __name__ == "__main__":
    main()
