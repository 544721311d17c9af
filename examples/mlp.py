"""Train a small MLP on generated data (three interleaved spirals), with em.compile.

    python examples/mlp.py [--steps 300] [--hidden 64] [--lr 0.5] [--compare]

The whole training step -- forward, cross-entropy, backward and the SGD update --
is one compiled function: after the first calls it runs as a cached program, with
no Python tracing. `--compare` also times the same step uncompiled (lazy) and eager.
"""

import math
import time

from _cli import parser as make_parser
from _cli import positive_float, positive_int

import ember as em


def spirals(n_per_class: int, classes: int = 3, noise: float = 0.2):
    """Points on `classes` interleaved spiral arms, and their labels."""
    t = em.linspace(0.0, 1.0, n_per_class).repeat(classes)               # radius
    label = em.arange(classes).unsqueeze(1).expand(classes, n_per_class).reshape(-1)
    angle = t * 4.0 + label.float() * (2 * math.pi / classes) + em.randn(t.shape[0]) * noise
    x = em.stack([t * angle.cos(), t * angle.sin()], dim=1)
    return x.realize(), label.realize()


def init(fan_in: int, fan_out: int):
    bound = 1.0 / math.sqrt(fan_in)
    w = (em.rand(fan_in, fan_out) * 2 - 1) * bound
    b = (em.rand(fan_out) * 2 - 1) * bound
    return w.requires_grad_(), b.requires_grad_()


def forward(params, x):
    w1, b1, w2, b2 = params
    return (x @ w1 + b1).relu() @ w2 + b2


def cross_entropy(logits, labels):
    """Mean negative log-likelihood of the labels under softmax(logits)."""
    logp = logits.log_softmax(dim=1)
    return -logp.gather(1, labels.unsqueeze(1)).mean()


def step(w1, b1, w2, b2, x, y, lr):
    loss = cross_entropy(forward((w1, b1, w2, b2), x), y)
    loss.backward()
    with em.no_grad():
        for p in (w1, b1, w2, b2):
            p.sub_(lr * p.grad)
            p.grad.zero_()
    return loss.detach()


def train(steps: int, hidden: int, lr: float, fn, every: int, quiet: bool = False):
    em.manual_seed(0)
    x, y = spirals(200)
    params = init(2, hidden) + init(hidden, 3)
    start = time.perf_counter()
    for i in range(steps + 1):
        loss = fn(*params, x, y, lr)
        if not quiet and i % every == 0:
            with em.no_grad():
                acc = (forward(params, x).argmax(dim=1) == y).float().mean()
            print(f"step {i:4d}  loss {loss.item():.4f}  accuracy {acc.item():.3f}")
    seconds = time.perf_counter() - start
    return loss.item(), seconds / (steps + 1)


def main() -> None:
    ap = make_parser(__doc__)
    ap.add_argument("--steps", type=positive_int, default=300, help="compiled SGD steps")
    ap.add_argument("--hidden", type=positive_int, default=64, help="hidden units")
    ap.add_argument("--lr", type=positive_float, default=0.5, help="learning rate")
    ap.add_argument("--every", type=positive_int, default=50,
                    help="print loss and accuracy every N steps")
    ap.add_argument("--compare", action="store_true",
                    help="also time the uncompiled (lazy) and eager steps")
    args = ap.parse_args()
    print(f"MLP 2 -> {args.hidden} -> 3 on 600 spiral points, SGD lr={args.lr}, "
          f"{args.steps} compiled steps")
    compiled = em.compile(step)
    loss, per_step = train(args.steps, args.hidden, args.lr, compiled, args.every)
    print(f"final loss {loss:.4f}; {per_step * 1e6:.0f} us per compiled step")
    print(em.explain(compiled))
    if args.compare:
        _, lazy = train(args.steps, args.hidden, args.lr, step, args.every, quiet=True)
        with em.eager():
            _, eager = train(args.steps, args.hidden, args.lr, step, args.every, quiet=True)
        print(f"per step: compiled {per_step * 1e6:.0f} us, lazy {lazy * 1e6:.0f} us, "
              f"eager {eager * 1e6:.0f} us")


if __name__ == "__main__":
    main()
