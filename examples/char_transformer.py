"""Train a tiny character-level transformer on Python's own source, its step compiled.

    python examples/char_transformer.py                  # about a minute of training
    python examples/char_transformer.py --steps 300      # a fixed number of steps instead
    python examples/char_transformer.py --compare        # compiled vs uncompiled vs torch

The text is the source of a few standard-library modules (`textwrap`, `string`,
`bisect`, `this`: they ship with Python, nothing is downloaded). The model is a GPT-style
decoder (as GPT-2: token and position `Embedding`s, pre-norm blocks of causal
`F.scaled_dot_product_attention` and a tanh-GELU MLP with `LayerNorm`s, a `Linear` head);
`AdamW` with a cosine learning-rate schedule (`CosineAnnealingLR`). The whole training
step -- forward, cross-entropy, backward, `opt.step()`, `opt.zero_grad()` -- is one
`em.compile`d function. At the end it samples text, saves the weights with `em.save`,
loads them into a fresh model with `em.load` and checks it gives the same loss.
The model code takes the library as an argument, so `--compare` runs it in torch too.
"""

from __future__ import annotations

import bisect
import inspect
import math
import os
import string
import tempfile
import textwrap
import time
import types

import numpy as np
from _cli import parser as make_parser
from _cli import positive_float, positive_int

import ember as em


def corpus() -> str:
    """The source of a few standard-library modules, as one string."""
    import importlib.util

    # NOTE: `import this` prints the Zen of Python; its source is read without running it.
    spec = importlib.util.find_spec("this")
    with open(spec.origin, encoding="utf-8") as f:
        zen = f.read()
    return "\n".join([inspect.getsource(textwrap), inspect.getsource(string),
                      inspect.getsource(bisect), zen])


class Vocab:
    """Characters <-> integer codes."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, codes) -> str:
        return "".join(self.chars[int(i)] for i in codes)


def model_classes(lib: types.ModuleType):
    """The model's classes built on `lib.nn` (`lib` is ember or torch): the same code."""
    nn, F = lib.nn, lib.nn.functional

    class Block(nn.Module):
        """Pre-norm transformer block: causal self-attention, then a GELU MLP."""

        def __init__(self, dim: int, heads: int, dropout: float):
            super().__init__()
            self.heads = heads
            self.ln1 = nn.LayerNorm(dim)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.ln2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"),
                                     nn.Linear(4 * dim, dim), nn.Dropout(dropout))

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
            # (b, t, d) -> (b, heads, t, d / heads)
            q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
                       for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
            return x + self.mlp(self.ln2(x))

    class CharTransformer(nn.Module):
        def __init__(self, vocab: int, context: int, dim: int, heads: int, layers: int,
                     dropout: float = 0.0):
            super().__init__()
            self.token = nn.Embedding(vocab, dim)
            self.position = nn.Embedding(context, dim)
            self.blocks = nn.Sequential(*[Block(dim, heads, dropout) for _ in range(layers)])
            self.ln = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, vocab)
            self.register_buffer("positions", lib.arange(context), persistent=False)

        def forward(self, codes):
            x = self.token(codes) + self.position(self.positions[:codes.shape[1]])
            return self.head(self.ln(self.blocks(x)))

    return CharTransformer


def make_model(lib, args, vocab: int):
    lib.manual_seed(args.seed)
    cls = model_classes(lib)
    return cls(vocab, args.context, args.dim, args.heads, args.layers, args.dropout)


def loss_of(lib, model, x, y):
    logits = model(x)
    return lib.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def make_step(lib, model, opt):
    """One training step: forward, loss, backward, the AdamW update."""
    def step(x, y):
        loss = loss_of(lib, model, x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.detach()
    return step


class Batches:
    """Random windows of the encoded text: inputs and the next characters as targets."""

    def __init__(self, codes: np.ndarray, batch: int, context: int, seed: int):
        self.codes, self.batch, self.context = codes, batch, context
        self.rng = np.random.default_rng(seed)

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        starts = self.rng.integers(0, len(self.codes) - self.context - 1, self.batch)
        rows = starts[:, None] + np.arange(self.context + 1)
        windows = self.codes[rows]
        return windows[:, :-1], windows[:, 1:]


def sample(model, vocab: Vocab, prompt: str, n: int, context: int, temperature: float,
           seed: int) -> str:
    """`n` characters drawn one at a time after `prompt`, reading the last `context`.

    NOTE: the window always has `context` characters (the prompt is at least that long),
    so every draw runs the same cached graph.
    """
    gen = em.Generator().manual_seed(seed)
    codes = list(vocab.encode(prompt))
    model.eval()
    with em.no_grad():
        for _ in range(n):
            x = em.tensor([codes[-context:]])
            logits = model(x)[0, -1] / temperature
            codes.append(int(em.multinomial(logits.softmax(dim=0), 1, generator=gen)))
    model.train()
    return vocab.decode(codes[len(prompt):])


def train(args, model, step, sched, batches: Batches, total: int) -> float:
    """Run `total` compiled steps, printing progress; returns the last loss."""
    start = last_time = time.perf_counter()
    last_step, loss = 0, None
    for i in range(1, total + 1):
        x, y = batches.next()
        loss = step(em.from_numpy(x), em.from_numpy(y))
        sched.step()
        if i % args.every == 0 or i == total:
            now = time.perf_counter()
            rate = (i - last_step) / (now - last_time)
            print(f"step {i:5d}/{total}  loss {loss.item():.4f}  "
                  f"lr {sched.get_last_lr()[0]:.2e}  {rate:6.1f} steps/s  "
                  f"({now - start:5.1f} s)", flush=True)
            last_time, last_step = now, i
    return loss.item()


def planned_steps(args, step, batches: Batches) -> int:
    """--steps, or the steps that fit in --seconds at the rate of a few warm-up steps.

    The warm-up steps train the model too (at the initial learning rate); the first two
    calls (the trace and compile, the first replay) are not counted in the rate.
    """
    if args.steps:
        return args.steps
    for _ in range(2):  # the trace, and the first replay
        x, y = batches.next()
        step(em.from_numpy(x), em.from_numpy(y)).item()
    start, n = time.perf_counter(), 3
    for _ in range(n):
        x, y = batches.next()
        step(em.from_numpy(x), em.from_numpy(y)).item()
    per_step = (time.perf_counter() - start) / n
    return max(1, int(args.seconds / per_step))


def check_reload(args, model, vocab_size: int, batch) -> tuple[float, float]:
    """Save the weights with em.save, load them into a fresh model; both losses."""
    x, y = (em.from_numpy(a) for a in batch)
    path = args.save or os.path.join(tempfile.mkdtemp(prefix="ember-char-"), "weights.npz")
    em.save(model.state_dict(), path)
    fresh = make_model(em, args, vocab_size)
    fresh.load_state_dict(em.load(path))
    model.eval()
    fresh.eval()
    with em.no_grad():
        before, after = loss_of(em, model, x, y).item(), loss_of(em, fresh, x, y).item()
    model.train()
    print(f"saved the weights to {path} ({os.path.getsize(path) / 1024:.0f} KiB); "
          f"reloaded: loss {after:.6f} (trained model: {before:.6f})")
    if abs(before - after) > 1e-6 * max(1.0, abs(before)):
        raise SystemExit("the reloaded model gives another loss")
    return before, after


def time_steps(step, batches: Batches, n: int, to_tensor) -> float:
    """Seconds per step of `step`, after two warm-up calls."""
    data = [batches.next() for _ in range(n + 2)]
    for x, y in data[:2]:
        float(step(to_tensor(x), to_tensor(y)))
    start = time.perf_counter()
    for x, y in data[2:]:
        float(step(to_tensor(x), to_tensor(y)))
    return (time.perf_counter() - start) / n


def compare(args, codes: np.ndarray, vocab_size: int) -> None:
    """Time compiled, uncompiled (lazy) and torch eager steps of the same model."""
    n = args.compare_steps
    print(f"timing {n} steps each (batch {args.batch}, context {args.context}):")
    times = {}
    for name in ("ember compiled", "ember lazy"):
        model = make_model(em, args, vocab_size)
        opt = em.optim.AdamW(model.parameters(), lr=args.lr)
        step = make_step(em, model, opt)
        step = em.compile(step) if name == "ember compiled" else step
        times[name] = time_steps(step, Batches(codes, args.batch, args.context, 1), n,
                                 em.from_numpy)
    try:
        import torch
    except ImportError:
        print("  torch is not installed: no torch timing")
        torch = None
    if torch is not None:
        model = make_model(torch, args, vocab_size)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
        times["torch eager"] = time_steps(make_step(torch, model, opt),
                                          Batches(codes, args.batch, args.context, 1), n,
                                          torch.from_numpy)
    for name, seconds in times.items():
        print(f"  {name:15s} {seconds * 1e3:8.2f} ms per step")
    if torch is not None:
        print(f"  compiled / torch eager = {times['ember compiled'] / times['torch eager']:.2f}x,"
              f" lazy / torch eager = {times['ember lazy'] / times['torch eager']:.2f}x")


def parse_args(argv=None):
    ap = make_parser(__doc__)
    ap.add_argument("--seconds", type=positive_float, default=60.0,
                    help="train for about this long (ignored with --steps)")
    ap.add_argument("--steps", type=positive_int, default=None,
                    help="train for exactly this many steps instead of --seconds")
    ap.add_argument("--batch", type=positive_int, default=32, help="sequences per step")
    ap.add_argument("--context", type=positive_int, default=64, help="characters per sequence")
    ap.add_argument("--dim", type=positive_int, default=64, help="model width")
    ap.add_argument("--heads", type=positive_int, default=4, help="attention heads")
    ap.add_argument("--layers", type=positive_int, default=2, help="transformer blocks")
    ap.add_argument("--dropout", type=float, default=0.0, help="dropout after each MLP")
    ap.add_argument("--lr", type=positive_float, default=3e-3, help="AdamW's peak learning rate")
    ap.add_argument("--every", type=positive_int, default=50, help="print progress every N steps")
    ap.add_argument("--sample", type=positive_int, default=300,
                    help="characters to sample at the end")
    ap.add_argument("--temperature", type=positive_float, default=0.8,
                    help="sampling temperature")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights and batches")
    ap.add_argument("--save", default=None,
                    help="where em.save writes the weights (default: a temporary folder)")
    ap.add_argument("--compare", action="store_true",
                    help="also time compiled, uncompiled and torch eager steps")
    ap.add_argument("--compare-steps", type=positive_int, default=20,
                    help="steps timed per contender by --compare")
    args = ap.parse_args(argv)
    if args.dim % args.heads:
        ap.error(f"argument --heads: --dim {args.dim} is not divisible by {args.heads} heads")
    if not 0 <= args.dropout < 1:
        ap.error(f"argument --dropout: must be in [0, 1), got {args.dropout}")
    if args.save and not os.path.isdir(os.path.dirname(os.path.abspath(args.save))):
        ap.error(f"argument --save: the folder {os.path.dirname(args.save)} does not exist")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    text = corpus()
    vocab = Vocab(text)
    codes = vocab.encode(text)
    if len(codes) <= args.context + 1:
        raise SystemExit(f"--context {args.context} is longer than the text ({len(codes)})")
    model = make_model(em, args, len(vocab.chars))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"text: {len(text)} characters, {len(vocab.chars)} distinct; model: "
          f"{args.layers} blocks, width {args.dim}, {args.heads} heads, context "
          f"{args.context}, {n_params} parameters")
    opt = em.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    step = em.compile(make_step(em, model, opt))
    batches = Batches(codes, args.batch, args.context, args.seed)
    # NOTE: the scheduler exists before the first step: it marks `opt.step` to check the
    # order of the calls, and a compiled step replays without running that Python. With
    # --seconds, its length is set once the warm-up steps have measured the rate.
    sched = em.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps or 1,
                                                    eta_min=args.lr / 10)
    total = sched.T_max = planned_steps(args, step, batches)
    print(f"training {total} compiled steps (AdamW, cosine schedule from lr {args.lr})")
    final = train(args, model, step, sched, batches, total)
    print(f"final training loss {final:.4f} (uniform guess: {math.log(len(vocab.chars)):.4f})")
    start = int(np.random.default_rng(args.seed).integers(0, len(text) - args.context))
    prompt = text[start:start + args.context]
    print("sample, after the prompt " + repr(prompt[-30:]) + ":")
    print(sample(model, vocab, prompt, args.sample, args.context, args.temperature, args.seed))
    check_reload(args, model, len(vocab.chars), Batches(codes, args.batch, args.context, 7).next())
    if args.compare:
        compare(args, codes, len(vocab.chars))


if __name__ == "__main__":
    main()
