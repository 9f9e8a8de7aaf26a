# PyTorch's side of issue 26's fine-tuning memory table: the step of `bench gpt2-finetune` in
# PyTorch eager (Debian's python3-torch), to run under /usr/bin/time -v by bench/finetune_memory.sh.
#
#   /usr/bin/python3 bench/gpt2_finetune_torch.py [--size 124m|355m|774m|smoke] [--lora R]
#       [--checkpoint] [--bf16] [--steps N] [--warmup N] [--threads N]
#
# The model: GPT-2 shaped (vocab 50257, context 1024, pre-LayerNorm blocks, GELU tanh, biases, the
# output projection tied to the token embedding), matrices and embeddings drawn from N(0, 0.02).
# One step: batch 4 x 256 random tokens, cross-entropy over every position, backward, AdamW
# (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0) over the trainable parameters only.
#   --lora R      every weight frozen; rank-R adapters (alpha 2R) on the attention's qkv and output
#                 projections and the MLP's two layers, written out here (Debian has no peft)
#   --checkpoint  each block under torch.utils.checkpoint (non-reentrant: the blocks' inputs need
#                 not require grad when the embeddings are frozen)
#   --bf16        forward and loss under torch.autocast("cpu", dtype=torch.bfloat16); the frozen
#                 weights stored in bfloat16 (as `bench gpt2-finetune --bf16` does); trained
#                 weights, their gradients and the optimizer state stay float32
#   --threads N   intra-op threads (default: every CPU, as our OpenMP pool)
# Prints the parameter counts, the loss, the bytes of weights, gradients and optimizer state, and
# as its last line `gpt2-finetune median <X> us` (the median of the timed steps).
import argparse
import math
import os
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

SHAPES = {  # layers, heads, width
    "124m": (12, 12, 768),
    "355m": (24, 16, 1024),
    "774m": (36, 20, 1280),
    "smoke": (2, 2, 64),
}
VOCAB, CONTEXT, BATCH, SEQ = 50257, 1024, 4, 256


class Adapted(nn.Module):
    """A linear layer whose weight W is frozen and gains (alpha / r) B A, A [r, in], B [out, r]."""

    def __init__(self, base, rank):
        super().__init__()
        self.base = base
        self.scale = 2.0  # alpha = 2 r
        self.A = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x):
        return self.base(x) + self.scale * F.linear(F.linear(x, self.A), self.B)


class Block(nn.Module):
    def __init__(self, heads, width):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.attn_out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.mlp_out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x):
        b, t, c = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, h, c // h).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(c // h))
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        weights = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        mixed = torch.matmul(weights, v).transpose(1, 2).reshape(b, t, c)
        x = x + self.attn_out(mixed)
        return x + self.mlp_out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, layers, heads, width):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, width), nn.Embedding(CONTEXT, width)
        self.blocks = nn.ModuleList([Block(heads, width) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.checkpoint = False
        for p in self.parameters():  # LayerNorm: gain one, bias zero (PyTorch's defaults)
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
        for blk in self.blocks:
            for lin in (blk.qkv, blk.attn_out, blk.fc, blk.mlp_out):
                nn.init.zeros_(lin.bias)

    def loss(self, idx, targets):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for blk in self.blocks:
            if self.checkpoint and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        logits = F.linear(self.ln_f(x), self.tok.weight)
        # Under --bf16, autocast's own policy decides the loss's precision.
        return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def add_lora(model, rank):
    for p in model.parameters():
        p.requires_grad_(False)
    for blk in model.blocks:
        for name in ("qkv", "attn_out", "fc", "mlp_out"):
            setattr(blk, name, Adapted(getattr(blk, name), rank))
    return 4 * len(model.blocks)


def nbytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))


def main():
    ap = argparse.ArgumentParser(description="PyTorch GPT-2 fine-tuning step (issue 26)")
    ap.add_argument("--size", choices=sorted(SHAPES), default="124m")
    ap.add_argument("--lora", type=int, default=0)
    ap.add_argument("--checkpoint", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = GPT2(*SHAPES[a.size])
    adapted = add_lora(model, a.lora) if a.lora > 0 else 0
    model.checkpoint = a.checkpoint
    if a.bf16:
        for p in model.parameters():
            if not p.requires_grad:
                p.data = p.data.to(torch.bfloat16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    data = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=torch.Generator().manual_seed(0))
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    print(f"gpt2-finetune size {a.size}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"{sum(p.numel() for p in trainable)} trainable (LoRA rank {a.lora} on {adapted} layers), "
          f"checkpointing {'on' if a.checkpoint else 'off'}, bf16 autocast "
          f"{'on' if a.bf16 else 'off'}, batch {BATCH} x {SEQ}, threads {torch.get_num_threads()}")
    times = []
    for i in range(a.warmup + a.steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = model.loss(x, y)
        loss.backward()
        opt.step()
        value = loss.item()
        if i >= a.warmup:
            times.append(time.perf_counter() - start)
    grads = nbytes(p.grad for p in trainable)
    state = nbytes(v for s in opt.state.values() for v in s.values())
    mib = 1 << 20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"gpt2-finetune loss {value:.4f} after {a.warmup + a.steps} steps")
    print(f"gpt2-finetune memory: weights {nbytes(model.parameters()) / mib:.1f} MiB, gradients "
          f"{grads / mib:.1f} MiB, optimizer state {state / mib:.1f} MiB, peak resident {peak:.1f} MiB")
    times.sort()
    print(f"gpt2-finetune median {times[len(times) // 2] * 1e6:.3f} us")


if __name__ == "__main__":
    main()
