"""Fit a small linear regression with plain gradient descent, written with backward().

The data are generated: y = X @ w_true + b_true + noise, with 256 samples of 4
features. The model starts at zero and follows the gradient of the mean squared
error; the loss is printed every `--every` steps, then the fitted parameters
beside the true ones.

    python examples/linear_regression.py              # 300 steps
    python examples/linear_regression.py --steps 2000 --lr 0.05 --every 200
"""

from __future__ import annotations

import time

import numpy as np
from _cli import parser as make_parser
from _cli import positive_float, positive_int

import ember as em


def make_data(n: int = 256, features: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features)).astype(np.float32)
    w_true = np.arange(1, features + 1, dtype=np.float32) * np.float32(0.5)
    b_true = np.float32(-1.0)
    y = X @ w_true + b_true + np.float32(0.1) * rng.standard_normal(n).astype(np.float32)
    return em.tensor(X), em.tensor(y), w_true, b_true


def step(X, y, w, b, lr: float):
    """One gradient-descent step; returns the loss (a lazy tensor)."""
    loss = ((X @ w + b - y) ** 2).mean()
    loss.backward()
    with em.no_grad():
        w.sub_(lr * w.grad)
        b.sub_(lr * b.grad)
        w.grad.zero_()
        b.grad.zero_()
    return loss


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--steps", type=positive_int, default=300, help="gradient steps")
    parser.add_argument("--lr", type=positive_float, default=0.02, help="learning rate")
    parser.add_argument("--every", type=positive_int, default=50,
                        help="print the loss every N steps")
    args = parser.parse_args(argv)

    X, y, w_true, b_true = make_data()
    print(f"linear regression: {X.shape[0]} samples, {X.shape[1]} features, "
          f"{args.steps} steps of gradient descent with lr {args.lr:g}")
    w = em.tensor([0.0] * X.shape[1], requires_grad=True)
    b = em.tensor(0.0, requires_grad=True)
    start = time.perf_counter()
    for i in range(args.steps):
        loss = step(X, y, w, b, args.lr)
        if i % args.every == 0 or i == args.steps - 1:
            print(f"step {i:5d}   loss {loss.item():.6f}")
    seconds = time.perf_counter() - start
    print("fitted w", np.round(w.detach().numpy(), 3), "  true w", w_true)
    print(f"fitted b {b.item():.3f}   true b {b_true:.3f}")
    print(f"{seconds / args.steps * 1e6:.0f} us per step")


if __name__ == "__main__":
    main()
