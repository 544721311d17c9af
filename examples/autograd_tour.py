"""A tour of ember's autograd: PyTorch's surface, JAX's functions, the errors.

    python examples/autograd_tour.py

Gradients are a graph pass: backward() turns each recorded operation into its
vector-Jacobian product, as ordinary graph nodes, and computes them in one run.
"""

from __future__ import annotations

import warnings

from _cli import parser as make_parser

import ember as em


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 66 - len(title)))


def show(label: str, value) -> None:
    print(f"{label:<38} {value}")


def worked_example() -> None:
    section("the worked example: x7 = 0.2 x1^2 + 0.2 x2^2 - 5")
    x1 = em.tensor(2.0, requires_grad=True)
    x2 = em.tensor(2.0, requires_grad=True)
    x3 = x1 ** 2
    x4 = x2 ** 2
    x5 = 0.2 * x3
    x6 = 0.2 * x4
    x7 = x5 + x6 - 5
    for t in (x3, x5, x7):
        t.retain_grad()  # keep the gradients of these intermediates
    show("x7", x7)
    show("x7.grad_fn", x7.grad_fn.name())
    show("x7.grad_fn.next_functions", x7.grad_fn.next_functions)
    add = x7.grad_fn.next_functions[0][0]
    show("  AddBackward0 feeds from", [f.name() for f, _ in add.next_functions])
    show("  PowBackward0 of x3 feeds from", x3.grad_fn.next_functions)
    show("x1.is_leaf, x3.is_leaf", (x1.is_leaf, x3.is_leaf))
    x7.backward()
    show("x1.grad, x2.grad (0.4 * x)", (round(x1.grad.item(), 6), round(x2.grad.item(), 6)))
    show("x3.grad, x5.grad, x7.grad", (round(x3.grad.item(), 6), x5.grad.item(),
                                        x7.grad.item()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        show("x4.grad (not retained)", x4.grad)
    show("  with the warning", str(caught[0].message)[:60] + "...")


def propagation() -> None:
    section("requires_grad propagates; no_grad, detach and integers stop it")
    w = em.tensor([1.0, -2.0, 3.0], requires_grad=True)
    c = em.tensor([0.5, 0.5, 0.5])
    show("(w * c).requires_grad", (w * c).requires_grad)
    show("(c * 2).requires_grad", (c * 2).requires_grad)
    with em.no_grad():
        show("under no_grad: (w * c).requires_grad", (w * c).requires_grad)
    show("w.detach().requires_grad", w.detach().requires_grad)
    show("(w > 0).requires_grad", (w > 0).requires_grad)
    loss = (w * c).sum() + w.abs().max()
    loss.backward()
    show("grad of sum(w * c) + max|w|", w.grad)
    (w ** 2).sum().backward()
    show("after a second backward (adds 2w)", w.grad)


def functional() -> None:
    section("JAX-style: em.grad and em.value_and_grad return functions")
    df = em.grad(lambda x: (x ** 3).sum())
    show("grad(sum x^3) at [1, 2]", df(em.tensor([1.0, 2.0])))
    d2 = em.grad(em.grad(em.sin))
    show("grad(grad(sin)) at 0.5 (= -sin)", round(d2(em.tensor(0.5)).item(), 6))
    vg = em.value_and_grad(lambda a, b: (a * b).sum(), argnums=(0, 1))
    value, (ga, gb) = vg(em.tensor([1.0, 2.0]), em.tensor([3.0, 4.0]))
    show("value_and_grad(sum a*b)", (value.item(), ga.tolist(), gb.tolist()))
    x = em.tensor([0.5, 1.5], requires_grad=True)
    y = (x.exp() * x).sum()
    (g,) = em.autograd.grad(y, x, create_graph=True)
    (h,) = em.autograd.grad(g.sum(), x)
    show("d/dx x e^x, and d/dx of that", ([round(v, 4) for v in g.tolist()],
                                           [round(v, 4) for v in h.tolist()]))


def errors() -> None:
    section("errors, in PyTorch's words (nothing half-written after them)")
    x = em.tensor([1.0, 2.0], requires_grad=True)

    def attempt(what: str, fn) -> None:
        try:
            fn()
            print(f"{what}: no error?")
        except (RuntimeError, TypeError) as e:
            print(f"{what}:\n    {type(e).__name__}: {str(e)[:110]}")

    attempt("backward of a non-scalar", lambda: (x * 2).backward())
    y = (x * x).sum()
    y.backward()
    attempt("backward twice", lambda: y.backward())
    attempt("in-place on a leaf that requires grad", lambda: x.add_(1))

    def modified_after_use():
        z = x.exp()
        z.add_(1)
        z.sum().backward()
    attempt("backward after an in-place change", modified_after_use)
    attempt("grad of a non-scalar function", lambda: em.grad(lambda t: t * 2)(x))
    show("x.grad after all that (from y only)", x.grad)


def main() -> None:
    make_parser(__doc__).parse_args()  # --help says what the tour shows
    print(__doc__.split("\n\n")[0])
    worked_example()
    propagation()
    functional()
    errors()


if __name__ == "__main__":
    main()
