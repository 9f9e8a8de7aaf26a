#!/usr/bin/env python3
"""examples/cnn's recipe in PyTorch, to compare test accuracies on the same bytes.

    /usr/bin/python3 examples/cnn_torch.py --data DIR [--epochs 5] [--batch 64] [--lr 0.02]
        [--momentum 0.9] [--val 0.1] [--seed 0]

DIR holds IDX files with MNIST's names (plain or .gz), as for examples/cnn --data; `cnn
--write-data DIR` writes its synthetic sets there, examples/digits_to_idx.py a real data set.
Every step of the recipe is the one examples/cnn.cpp takes:
  - pixels byte / 255; sides under 28 padded with zeros, centred, to 28;
  - standardised with the mean and the (population) standard deviation of all training images;
  - the last round(val * N) training images held out for validation (evaluated after each epoch);
  - LeNet-5: conv 1->6 5x5 padding 2, ReLU, 2x2 max-pool, conv 6->16 5x5, ReLU, 2x2 max-pool,
    (adaptive average pool to 5x5 when the map is not 5x5), flatten, Linear 400->120, ReLU,
    Linear 120->84, ReLU, Linear 84->classes, with PyTorch's default initialisation (which
    examples/cnn reproduces: kaiming_uniform(a = sqrt(5)), bias U(+-1/sqrt(fan_in)));
  - SGD with momentum (dampening 0, no Nesterov), mean cross-entropy, mini-batches of a new random
    order every epoch, the last batch smaller when the size does not divide;
  - test accuracy of the final model (argmax of the logits).
The random streams differ (PyTorch's generator, not tapegrad's): the initial weights and the batch
orders are other draws from the same distributions, so compare means over several seeds.
Prints, as its last line, exactly "test accuracy <fraction>".
"""
import argparse
import gzip
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F


def read_idx(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with (gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")) as f:
                data = f.read()
            break
    else:
        sys.exit(f"cnn_torch: missing {path} (or {path}.gz)")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"cnn_torch: {path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8)
    return body.reshape(dims)


def load(data_dir, split):
    images = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte")).float() / 255.0
    labels = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte")).long()
    x = images.unsqueeze(1)  # [N, 1, rows, cols]
    ph, pw = max(0, 28 - x.shape[2]), max(0, 28 - x.shape[3])
    if ph or pw:
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    return x.contiguous(), labels


def lenet5(H, W, classes):
    nn = torch.nn
    layers = [nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
              nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)]
    if (H // 2 - 4) // 2 != 5 or (W // 2 - 4) // 2 != 5:
        layers.append(nn.AdaptiveAvgPool2d(5))
    layers += [nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
               nn.Linear(84, classes)]
    return nn.Sequential(*layers)


def evaluate(model, x, y, batch=256):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(x[i:i + batch])
            loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--val", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    x_all, y_all = load(a.data, "train")
    x_test, y_test = load(a.data, "t10k")
    mu = x_all.mean().item()
    sd = max(x_all.std(unbiased=False).item(), 1e-6)
    print(f"pixels standardised with mean {mu:.4f} and std {sd:.4f}")
    x_all, x_test = (x_all - mu) / sd, (x_test - mu) / sd
    n_all = len(x_all)
    cut = n_all - int(math.floor(a.val * n_all + 0.5))
    x, y, x_val, y_val = x_all[:cut], y_all[:cut], x_all[cut:], y_all[cut:]
    classes = int(max(y_all.max().item(), y_test.max().item())) + 1

    torch.manual_seed(a.seed)
    model = lenet5(x.shape[2], x.shape[3], classes)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    order = torch.Generator().manual_seed(a.seed + 1)
    print(f"model: LeNet-5 (PyTorch {torch.__version__}) on {x.shape[2]}x{x.shape[3]} inputs, "
          f"SGD lr {a.lr} momentum {a.momentum}, batch {a.batch}, {a.epochs} epochs; "
          f"training on {len(x)} images, validating on {len(x_val)}")
    for epoch in range(1, a.epochs + 1):
        t0, total, seen = time.time(), 0.0, 0
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), a.batch):
            idx = perm[i:i + a.batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        summary = ""
        if len(x_val):
            vl, va = evaluate(model, x_val, y_val)
            summary = f", val loss {vl:.4f} accuracy {va:.4f}"
        print(f"epoch {epoch}/{a.epochs} done: loss {total / seen:.4f}, {seen} samples in "
              f"{time.time() - t0:.1f} s{summary}")
    tl, ta = evaluate(model, x_test, y_test)
    print(f"test loss {tl:.4f}")
    print(f"test accuracy {ta:.4f}")


if __name__ == "__main__":
    main()
