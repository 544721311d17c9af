"""Kept products (runtime/compiled.py `_keep`): random training-style programs that
read a value midway, then build on the products it computed, agree with torch step for
step, run one after another in one process (a reuse bug shows only in sequence)."""

import random

import numpy as np
import pytest

import ember as em

torch = pytest.importorskip("torch")

LR = 0.05


def _program(rng: random.Random):
    """A random step over weights `ws` (a chain of products with elementwise ops between
    them), as source-free closures run on torch and on ember alike."""
    depth = rng.randint(1, 3)
    acts = [rng.choice(["relu", "tanh", "square", "none"]) for _ in range(depth)]
    read_at = rng.randint(0, depth)  # where .item() reads a value midway
    update = rng.choice(["isub", "sub_", "view", "mul_"])
    transpose = rng.random() < 0.5

    def step(lib, x, ws):
        h, hs, read = x, [], []
        for i, w in enumerate(ws):
            h = h @ (w.t().t() if transpose and i % 2 else w)
            hs.append(h)
            a = acts[i]
            h = h.relu() if a == "relu" else h.tanh() if a == "tanh" else \
                h * h if a == "square" else h
            if i + 1 == read_at:
                read.append(h.sum().item())
        loss = (h * h).sum()
        read.append(loss.item())
        g = 2 * h
        for i in reversed(range(len(ws))):
            # a pseudo-gradient built from this step's products (no autograd)
            prev = x if i == 0 else hs[i - 1]
            gw = prev.t() @ g
            g = g @ ws[i].t()
            with lib.no_grad():
                w = ws[i]
                if update == "isub":
                    w -= LR * gw / (1 + gw.abs().max())
                elif update == "sub_":
                    w.sub_(LR * gw.tanh())
                elif update == "view":
                    w[:, :1].sub_(LR * gw[:, :1].tanh())
                else:
                    w.mul_(0.99)
        return read

    return depth, step


@pytest.mark.parametrize("seed", range(12))
def test_random_steps_that_read_midway_agree_with_torch(seed):
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    depth, step = _program(rng)
    dims = [rng.randint(2, 6) for _ in range(depth + 1)]
    x = nrng.standard_normal((rng.randint(1, 5), dims[0])).astype(np.float32)
    ws = [nrng.standard_normal((dims[i], dims[i + 1])).astype(np.float32) * 0.5
          for i in range(depth)]
    ex, tx = em.tensor(x), torch.tensor(x)
    ew = [em.tensor(w) for w in ws]
    tw = [torch.tensor(w) for w in ws]
    for k in range(6):
        got, want = step(em, ex, ew), step(torch, tx, tw)
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-4, err_msg=f"step {k}")
    for e, t in zip(ew, tw):
        np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=2e-4, atol=1e-4)
