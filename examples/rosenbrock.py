"""Minimise the Rosenbrock function with plain gradient descent, written with backward().

    f(x1, x2) = (a - x1)^2 + b * (x2 - x1^2)^2,   a = 1, b = 5

starts at (-1, 1) and should approach the minimum at (a, a^2) = (1, 1).

    python examples/rosenbrock.py                     # 1000 iterations, lr 0.01
    python examples/rosenbrock.py --lr 0.02 --iters 500
    python examples/rosenbrock.py --compare           # lazy, compiled, eager (torch) timings

Each iteration builds the same graph: the loss, its backward, and the update of x
(which stays pending until backward() realises it with the next gradients).
"""

from __future__ import annotations

import time

from _cli import parser as make_parser
from _cli import positive_float, positive_int

import ember as em

A, B = 1.0, 5.0


def rosenbrock(x):
    return (A - x[0]) ** 2 + B * (x[1] - x[0] ** 2) ** 2


def descend(lib, lr: float, iters: int, report: int = 0):
    """Run the loop with `lib` (ember or torch); returns (x, seconds per iteration)."""
    x = lib.tensor([-1.0, 1.0], requires_grad=True)
    start = time.perf_counter()
    for i in range(iters):
        f = rosenbrock(x)
        f.backward()
        if report and (i % report == 0 or i == iters - 1):
            g = x.grad.tolist()
            print(f"iteration {i:5d}   f = {f.item():10.6f}   grad = ({g[0]:+.6f}, {g[1]:+.6f})")
        with lib.no_grad():
            x.sub_(lr * x.grad)
            x.grad.zero_()
    x.detach().tolist()  # make sure the last update has been computed
    return x, (time.perf_counter() - start) / iters


def step(x, lr: float):
    """One descent step as a function, for em.compile: the loss, backward, the update."""
    f = rosenbrock(x)
    f.backward()
    with em.no_grad():
        x.sub_(lr * x.grad)
        x.grad.zero_()
    return f.detach()


def descend_compiled(lr: float, iters: int):
    """The same loop with its step compiled; returns (x, seconds per iteration)."""
    compiled = em.compile(step)
    x = em.tensor([-1.0, 1.0], requires_grad=True)
    start = time.perf_counter()
    for _ in range(iters):
        compiled(x, lr)
    x.detach().tolist()
    return x, (time.perf_counter() - start) / iters


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--lr", type=positive_float, default=0.01, help="learning rate")
    parser.add_argument("--iters", type=positive_int, default=1000, help="iterations")
    parser.add_argument("--compare", action="store_true",
                        help="also time the loop compiled, in eager mode and in torch")
    args = parser.parse_args(argv)

    print(f"Rosenbrock f(x1, x2) = ({A:g} - x1)^2 + {B:g} * (x2 - x1^2)^2, from (-1, 1), "
          f"lr {args.lr:g}, {args.iters} iterations of gradient descent")
    x, lazy = descend(em, args.lr, args.iters, report=100)
    x1, x2 = x.detach().tolist()
    print(f"final x = ({x1:.6f}, {x2:.6f})   (the minimum is at ({A:g}, {A * A:g}))")
    if not args.compare:
        return

    def best(run, repeats: int = 3):
        """The final x and the best per-iteration time of a few silent runs."""
        runs = [run() for _ in range(repeats)]
        return runs[0][0], min(t for _, t in runs)

    def same(other) -> bool:
        return other.detach().tolist() == x.detach().tolist()

    print(f"\ntiming {args.iters} silent iterations (best of 3 runs):")
    _, lazy = best(lambda: descend(em, args.lr, args.iters))
    xc, compiled = best(lambda: descend_compiled(args.lr, args.iters))
    with em.eager():
        xe, eager = best(lambda: descend(em, args.lr, args.iters))
    print(f"  ember lazy     {lazy * 1e6:8.1f} us per iteration")
    print(f"  ember compiled {compiled * 1e6:8.1f} us per iteration   (same final x: {same(xc)})")
    print(f"  ember eager    {eager * 1e6:8.1f} us per iteration   (same final x: {same(xe)})")
    try:
        import torch
    except ImportError:
        print("  torch is not installed: no torch timing")
        return
    _, t_torch = best(lambda: descend(torch, args.lr, args.iters))
    print(f"  torch eager    {t_torch * 1e6:8.1f} us per iteration   "
          f"(ember lazy / torch eager = {lazy / t_torch:.1f}x, "
          f"compiled / torch eager = {compiled / t_torch:.2f}x)")


if __name__ == "__main__":
    main()
