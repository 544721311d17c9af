"""Autograd's surface, as PyTorch and JAX define it.

The book's worked example; requires_grad, is_leaf, .grad accumulation,
retain_grad and grad modes; tie and kink conventions against torch; the errors
(and that none of them leaves .grad half-written); gradients of gradients with
`create_graph=True` and `em.grad(em.grad(f))`; JAX-style `em.grad` and
`em.value_and_grad`; eager mode.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import ember as em

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def _np(t) -> np.ndarray:
    if torch is not None and isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return np.asarray(t.detach())


def _names(fn) -> list:
    return [f.name() if f is not None else None for f, _ in fn.next_functions]


# ---------------------------------------------------------------------------
# the book's worked example

def _book():
    x1 = em.tensor(2.0, requires_grad=True)
    x2 = em.tensor(2.0, requires_grad=True)
    x3 = x1 ** 2
    x4 = x2 ** 2
    x5 = 0.2 * x3
    x6 = 0.2 * x4
    x7 = x5 + x6 - 5
    return x1, x2, x3, x4, x5, x6, x7


def test_book_example_values_and_gradients():
    x1, x2, x3, _x4, x5, _x6, x7 = _book()
    for t in (x3, x5, x7):
        t.retain_grad()
    assert x7.item() == pytest.approx(-3.4)
    x7.backward()
    assert x1.grad.item() == pytest.approx(0.8)
    assert x2.grad.item() == pytest.approx(0.8)
    assert x3.grad.item() == pytest.approx(0.2)
    assert x5.grad.item() == pytest.approx(1.0)
    assert x7.grad.item() == pytest.approx(1.0)


def test_book_example_grad_fns():
    x1, _x2, x3, _x4, x5, x6, x7 = _book()
    assert x3.grad_fn.name() == "PowBackward0"
    assert x5.grad_fn.name() == "MulBackward0"
    assert (x5 + x6).grad_fn.name() == "AddBackward0"
    assert x7.grad_fn.name() == "SubBackward0"
    assert repr(x7).endswith("grad_fn=<SubBackward0>)")
    add = x7.grad_fn.next_functions[0][0]
    assert add.name() == "AddBackward0"
    assert [f.name() for f, _ in add.next_functions] == ["MulBackward0", "MulBackward0"]
    mul = add.next_functions[0][0]
    assert mul.next_functions[0][0] is x3.grad_fn
    acc = x3.grad_fn.next_functions[0][0]
    assert acc.name() == "torch::autograd::AccumulateGrad"
    assert acc.variable is x1
    assert x1.grad_fn is None and x1.is_leaf and not x3.is_leaf


def test_book_example_next_functions_list_scalar_operands():
    *_, x7 = _book()
    assert _names(x7.grad_fn) == ["AddBackward0", None]


# ---------------------------------------------------------------------------
# requires_grad, is_leaf, .grad, retain_grad, grad modes, detach

def test_requires_grad_propagates():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    c = em.tensor([3.0, 4.0])
    assert not c.requires_grad and c.is_leaf
    y = x * c
    assert y.requires_grad and not y.is_leaf
    assert not (c * 2).requires_grad and (c * 2).is_leaf
    assert (c + y).requires_grad
    assert em.zeros(2).requires_grad_().requires_grad
    z = em.ones(2, requires_grad=True)
    assert z.requires_grad and z.is_leaf
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf"):
        y.requires_grad_(False)


def test_integer_and_bool_tensors_carry_no_gradient():
    with pytest.raises(RuntimeError, match="floating point dtype can require gradients"):
        em.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point dtype can require gradients"):
        em.tensor([True]).requires_grad_()
    x = em.tensor([1.5, -2.0, 3.0], requires_grad=True)
    for t in (x > 0, x.argmax(), x.long(), x.isnan(), x.floor().long()):
        assert not t.requires_grad and t.grad_fn is None
    y = (x.long() * x).sum() + (x > 0).float().sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, -2.0, 3.0])


def test_grad_accumulates_across_backward_calls_in_place():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    g = x.grad
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])
    (x * 3).sum().backward()
    assert x.grad is g  # updated in place, as in PyTorch
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0])
    x.grad.zero_()
    x.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])
    x.grad = None
    (2 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_retain_grad_and_non_leaf_warning():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y * y
    y.retain_grad()
    z.sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [4.0, 8.0])
    assert y.retains_grad and not z.retains_grad
    with pytest.warns(UserWarning, match="not a leaf Tensor is being accessed"):
        assert z.grad is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert x.grad is not None and y.grad is not None
    with pytest.raises(RuntimeError, match="retain_grad on Tensor that has requires_grad"):
        em.tensor([1.0]).retain_grad()


def test_no_grad_and_enable_grad_as_context_managers_and_decorators():
    x = em.tensor([1.0], requires_grad=True)
    assert em.is_grad_enabled()
    with em.no_grad():
        assert not em.is_grad_enabled()
        y = x * 2
        with em.enable_grad():
            assert em.is_grad_enabled()
            w = x * 2
        assert not em.is_grad_enabled()
    assert em.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y.grad_fn is None
    assert w.requires_grad and w.grad_fn.name() == "MulBackward0"

    @em.no_grad()
    def off(t):
        assert not em.is_grad_enabled()
        return t * 2

    @em.enable_grad()
    def on(t):
        return t * 2

    assert not off(x).requires_grad
    with em.no_grad():
        assert on(x).requires_grad
    assert em.is_grad_enabled()
    em.set_grad_enabled(False)
    assert not (x * 2).requires_grad
    em.set_grad_enabled(True)
    with em.set_grad_enabled(False):
        assert not em.is_grad_enabled()
    assert em.is_grad_enabled()


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(ValueError), em.no_grad():
        raise ValueError("boom")
    assert em.is_grad_enabled()


def test_detach_shares_storage_and_stops_gradient():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    assert d.data_ptr() == y.data_ptr()
    z = (y * d.exp()).sum()  # d is a constant for the gradient
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp([3.0, 6.0]), rtol=1e-6)


def test_printing_and_realising_before_backward_keep_the_gradients():
    x = em.tensor([0.5, -1.0], requires_grad=True)
    y = (x.exp() * x).sin()
    loss = y.sum()
    repr(loss)
    em.realize(y)
    loss.item()
    loss.backward()
    a = np.array([0.5, -1.0], dtype=np.float32)
    expected = np.cos(np.exp(a) * a) * (np.exp(a) * a + np.exp(a))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-5)


def test_backward_with_gradient_argument_and_retain_graph():
    x = em.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    y.backward(em.tensor([1.0, 0.5, 0.0]), retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 0.0])
    y.backward([1.0, 1.0, 1.0])  # lists are accepted, as in PyTorch
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 6.0, 6.0])


def test_a_gradient_owns_its_memory():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    w = em.tensor([3.0, 4.0], requires_grad=True)
    (x * w).sum().backward()  # x.grad is w's value, w.grad is x's
    assert x.grad.tolist() == [3.0, 4.0] and w.grad.tolist() == [1.0, 2.0]
    assert x.grad.data_ptr() != w.data_ptr() and w.grad.data_ptr() != x.data_ptr()
    (g,) = em.autograd.grad((x * w).sum(), x)
    assert g.tolist() == [3.0, 4.0] and g.data_ptr() != w.data_ptr()


def test_autograd_grad_leaves_dot_grad_alone():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 3).sum()
    (g,) = em.autograd.grad(y, x)
    np.testing.assert_allclose(g.numpy(), [3.0, 12.0])
    assert x.grad is None


# ---------------------------------------------------------------------------
# one node read twice (nodes are hash-consed), constants, eager mode

def _grad(f, values=(1.0, 2.0)):
    x = em.tensor(list(values), requires_grad=True)
    f(x).sum().backward()
    return x.grad.tolist()


@pytest.mark.parametrize("f, expected", [
    (lambda x: x * x, [2.0, 4.0]),
    (lambda x: x / x, [0.0, 0.0]),
    (lambda x: x - x, [0.0, 0.0]),
    (lambda x: x * x.view(2), [2.0, 4.0]),
    (lambda x: x * (x.detach() * 2), [2.0, 4.0]),
    (lambda x: (x * 2) * (x * 2), [8.0, 16.0]),
])
def test_an_operand_used_twice(f, expected):
    assert _grad(f) == pytest.approx(expected)


def test_detached_operand_of_the_same_tensor():
    assert _grad(lambda x: x * x.detach()) == pytest.approx([1.0, 2.0])


def test_two_leaves_on_one_storage():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    x2 = x.detach().requires_grad_()
    (x * x2).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0] and x2.grad.tolist() == [1.0, 2.0]


def test_constant_leaf_broadcast():
    b = em.zeros(3, requires_grad=True)
    (em.ones(2, 3) + b).sum().backward()
    assert b.grad is not None and b.grad.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("reset", ["zero_", "fill_"])
def test_leaf_reset_in_place_under_no_grad_keeps_its_gradient(reset):
    w = em.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with em.no_grad():
        w.zero_() if reset == "zero_" else w.fill_(0.5)
    (em.ones(2, 3) * w).sum().backward()
    assert w.grad.tolist() == [2.0, 2.0, 2.0]


def test_eager_mode_gives_the_same_gradients():
    def run():
        x = em.tensor([-1.0, 1.0], requires_grad=True)
        f = (1 - x[0]) ** 2 + 5 * (x[1] - x[0] ** 2) ** 2
        f.backward()
        y = x.clone()
        y[0] = 3.0
        y.mul_(x)
        y.sum().backward()
        h = em.grad(em.grad(lambda t: t.sin() * t))(em.tensor(0.7))
        return x.grad.tolist(), h.item()
    lazy = run()
    with em.eager():
        eager = run()
    assert eager[0] == pytest.approx(lazy[0]) and eager[1] == pytest.approx(lazy[1])
    assert lazy[0] == pytest.approx([-4.0 + 3.0, 0.0 + 2.0])


# ---------------------------------------------------------------------------
# conventions at ties, kinks and non-finite values, against torch

NAN, INF = math.nan, math.inf
CONVENTIONS = {
    "where": (lambda m, x, y: m.where(x > 0, x, y), [[-1.0, 0.0, 2.0], [5.0, 6.0, 7.0]]),
    "max ties": (lambda m, x: m.max(x), [[1.0, 3.0, 3.0, 2.0]]),
    "max dim ties": (lambda m, x: m.max(x, dim=1).values, [[[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]]),
    "min ties": (lambda m, x: m.min(x), [[1.0, 0.0, 0.0, 2.0]]),
    "min dim ties": (lambda m, x: m.min(x, dim=0).values, [[[1.0, 3.0, 3.0], [1.0, 2.0, 3.0]]]),
    "amax ties": (lambda m, x: m.amax(x, dim=1), [[[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]]),
    "max NaN": (lambda m, x: m.max(x), [[1.0, NAN, 3.0]]),
    "abs at 0": (lambda m, x: m.abs(x), [[-1.0, 0.0, 2.0]]),
    "relu at 0": (lambda m, x: m.relu(x), [[-1.0, 0.0, 2.0]]),
    "relu NaN": (lambda m, x: m.relu(x), [[1.0, NAN, -3.0]]),
    "clamp at bounds": (lambda m, x: m.clamp(x, 0.0, 1.0), [[-1.0, 0.0, 0.5, 1.0, 2.0]]),
    "clamp tensor tie": (lambda m, x, lo: m.clamp(x, min=lo), [[0.0, 1.0, 2.0], [0.0, 2.0, 1.0]]),
    "maximum ties": (lambda m, x, y: m.maximum(x, y), [[1.0, 2.0, 3.0], [1.0, 0.0, 3.0]]),
    "minimum ties": (lambda m, x, y: m.minimum(x, y), [[1.0, 2.0, 3.0], [1.0, 0.0, 3.0]]),
    "maximum NaN": (lambda m, x, y: m.maximum(x, y), [[1.0, NAN, -3.0], [0.0, 1.0, NAN]]),
    "sort ties": (lambda m, x: m.sort(x).values, [[2.0, 1.0, 2.0, 1.0]]),
    "sign": (lambda m, x: m.sign(x), [[-1.0, 0.0, 2.0]]),
    "prod one zero": (lambda m, x: m.prod(x), [[0.0, 2.0, 3.0]]),
    "prod two zeros": (lambda m, x: m.prod(x), [[0.0, 2.0, 0.0]]),
    "sqrt at 0": (lambda m, x: m.sqrt(x), [[0.0, 1.0]]),
    "pow 0**2": (lambda m, x: x ** 2, [[0.0, 1.0]]),
    "pow x**0": (lambda m, x: x ** 0, [[0.0, 1.0]]),
    "pow 0**y": (lambda m, x, y: x ** y, [[0.0, 0.0, 0.0], [0.0, 2.0, 0.5]]),
    "log at 0": (lambda m, x: m.log(x), [[0.0, 1.0]]),
    "logsumexp -inf": (lambda m, x: m.logsumexp(x, dim=0), [[-INF, 0.0]]),
    "nan_to_num": (lambda m, x: m.nan_to_num(x), [[INF, NAN, 1.0]]),
    "quantile ties": (lambda m, x: m.quantile(x, 0.5), [[1.0, 2.0, 2.0, 3.0]]),
    "norm inf ties": (lambda m, x: x.norm(p=INF), [[1.0, -3.0, 3.0]]),
    "var of one": (lambda m, x: m.var(x), [[2.0]]),
    "norm at 0": (lambda m, x: m.norm(x), [[0.0, 0.0, 0.0]]),
    "norm dim zero row": (lambda m, x: x.norm(dim=1), [[[0.0, 0.0], [3.0, 4.0]]]),
    "std of a constant": (lambda m, x: m.std(x), [[1.0, 1.0, 1.0]]),
    "sigmoid far left": (lambda m, x: m.sigmoid(x), [[-800.0, 800.0]]),
    "clamp NaN": (lambda m, x: m.clamp(x, 0.0, 1.0), [[NAN, 0.5]]),
    "median ties": (lambda m, x: m.median(x), [[1.0, 2.0, 2.0, 3.0]]),
}


def _conventions(fn, values):
    out = []
    for m in (em, torch):
        xs = [m.tensor(v, dtype=m.float64, requires_grad=True) for v in values]
        y = fn(m, *xs)
        weights = m.arange(1.0, y.numel() + 1, dtype=m.float64).reshape(y.shape)
        (y * weights).sum().backward()
        out.append(([_np(y)], [_np(x.grad) for x in xs]))
    (ey, eg), (ty, tg) = out
    for a, c in zip(ey + eg, ty + tg):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12, equal_nan=True)


@needs_torch
@pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0")
@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_conventions_match_torch(name):
    _conventions(*CONVENTIONS[name])


# ---------------------------------------------------------------------------
# errors, and that none of them leaves .grad half-written

def _grads(*ts):
    return [None if t._grad is None else t._grad.tolist() for t in ts]


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad can be implicitly created only for scalar "
                       r"outputs \(the output has shape \(2,\)\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape "
                       r"of \(3,\) and output\[0\] has a shape of \(2,\)"):
        (x * 2).backward(em.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        em.tensor([1.0]).sum().backward()
    assert x.grad is None


def test_backward_twice_without_retain_graph():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    before = _grads(x)
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*"
                       "retain_graph=True"):
        y.backward()
    assert _grads(x) == before
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        em.autograd.grad(y, x)


def test_in_place_on_a_leaf_that_requires_grad():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used "
                       "in an in-place operation"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        x[0].mul_(2)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        x[1] = 5.0
    assert x.tolist() == [1.0, 2.0] and x._storage.version == 0
    with em.no_grad():
        x.add_(1)
    assert x.tolist() == [2.0, 3.0]


def test_backward_after_a_saved_tensor_was_modified_in_place():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    w = em.tensor([0.5, 0.5], requires_grad=True)
    (x * w).sum().backward()
    before = _grads(x, w)
    y = x.exp()
    other = (w * 3).sum()  # a healthy branch of the same graph
    y.add_(1)
    loss = y.sum() + other
    with pytest.raises(RuntimeError, match="modified by an inplace operation: the output of "
                       "ExpBackward0 is at version 1; expected version 0"):
        loss.backward()
    assert _grads(x, w) == before

    a = em.tensor([1.0, 2.0], requires_grad=True)
    b = a * 1
    c = b * b  # saves b
    b.mul_(2)
    c.retain_grad()
    with pytest.raises(RuntimeError, match=r"\[ember.Float32Tensor \[2\]\] of MulBackward0 is "
                       "at version 1; expected version 0"):
        c.sum().backward()
    assert a.grad is None and c._grad is None


def test_in_place_after_use_that_saved_nothing_is_fine():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    z = y * 2  # a constant factor: y's value is not needed for the gradient
    y.add_(1)
    z.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_grad_of_a_non_scalar_function():
    f = em.grad(lambda t: t * 2)
    with pytest.raises(TypeError, match=r"grad requires a real scalar output from <lambda>, "
                       r"got \(2,\)"):
        f(em.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="real scalar output"):
        em.grad(lambda t: (t > 0).sum())(em.tensor([1.0]))
    x = em.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="real scalar output"):
        em.value_and_grad(lambda t: t.tolist())(x)
    assert x.grad is None


# ---------------------------------------------------------------------------
# JAX-style grad and value_and_grad

def test_grad_argnums():
    def f(a, b, c):
        return (a * a * b).sum() + c
    a, b = em.tensor([1.0, 2.0]), em.tensor([3.0, 4.0])
    np.testing.assert_allclose(em.grad(f)(a, b, 1.0).numpy(), [6.0, 16.0])
    np.testing.assert_allclose(em.grad(f, argnums=1)(a, b, 1.0).numpy(), [1.0, 4.0])
    ga, gb = em.grad(f, argnums=(0, 1))(a, b, 1.0)
    np.testing.assert_allclose(ga.numpy(), [6.0, 16.0])
    np.testing.assert_allclose(gb.numpy(), [1.0, 4.0])
    (gc,) = em.grad(f, argnums=(2,))(a, b, em.tensor(1.0))
    assert gc.item() == 1.0
    assert not a.requires_grad and a.grad is None


def test_grad_accepts_python_numbers_and_unused_arguments():
    assert em.grad(lambda x: x * x)(3.0).item() == pytest.approx(6.0)
    g = em.grad(lambda x, y: (x * 2).sum(), argnums=1)(em.tensor([1.0]), em.tensor([5.0, 6.0]))
    assert g.tolist() == [0.0, 0.0]


def test_value_and_grad():
    vg = em.value_and_grad(lambda x, y: (x * y).sum(), argnums=(0, 1))
    value, (gx, gy) = vg(em.tensor([1.0, 2.0]), em.tensor([3.0, 4.0]))
    assert value.item() == 11.0 and not value.requires_grad
    assert gx.tolist() == [3.0, 4.0] and gy.tolist() == [1.0, 2.0]
    value, g = em.value_and_grad(lambda x: x.exp().sum())(em.tensor([0.0]))
    assert value.item() == 1.0 and g.tolist() == [1.0]


# ---------------------------------------------------------------------------
# higher order

HIGHER = {
    "sin": lambda m, x: m.sin(x),
    "exp": lambda m, x: m.exp(x),
    "cube": lambda m, x: x ** 3,
    "tanh": lambda m, x: m.tanh(x),
    "product": lambda m, x: x * m.sin(x) * m.exp(x),
    "log_softmax": lambda m, x: m.log_softmax(x * x, dim=0),
    "sigmoid of matmul": lambda m, x: m.sigmoid(m.outer(x, x) @ x),
}
POINTS = [0.3, -0.7, 1.2]


@needs_torch
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
@pytest.mark.parametrize("name", list(HIGHER))
def test_backward_create_graph_then_grad_of_grad(name):
    f = HIGHER[name]
    results = []
    for m in (em, torch):
        x = m.tensor(POINTS, dtype=m.float64, requires_grad=True)
        y = (f(m, x) * m.tensor([1.0, 2.0, 3.0], dtype=m.float64)).sum()
        y.backward(create_graph=True)
        g = x.grad
        x.grad = None
        (g * m.tensor([0.5, -1.0, 2.0], dtype=m.float64)).sum().backward()
        results.append((_np(g), _np(x.grad)))
    (eg, eh), (tg, th) = results
    np.testing.assert_allclose(eg, tg, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(eh, th, rtol=1e-10, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("name", list(HIGHER))
def test_autograd_grad_twice(name):
    f = HIGHER[name]
    results = []
    for m in (em, torch):
        x = m.tensor(POINTS, dtype=m.float64, requires_grad=True)
        y = f(m, x).sum()
        (g,) = m.autograd.grad(y, x, create_graph=True)
        (h,) = m.autograd.grad(g.sum(), x)
        results.append((_np(g), _np(h)))
    for a, c in zip(*results):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)


SCALAR = {
    "sin": (math.sin, lambda t: -math.sin(t)),
    "exp": (math.exp, math.exp),
    "cube": (lambda t: t ** 3, lambda t: 6 * t),
    "tanh": (math.tanh, lambda t: -2 * math.tanh(t) * (1 - math.tanh(t) ** 2)),
}


@pytest.mark.parametrize("name", list(SCALAR))
def test_grad_of_grad(name):
    f = {"sin": em.sin, "exp": em.exp, "cube": lambda t: t ** 3, "tanh": em.tanh}[name]
    d2 = em.grad(em.grad(f))
    for t in (-1.3, 0.0, 0.4, 2.0):
        assert d2(em.tensor(t, dtype=em.float64)).item() == pytest.approx(SCALAR[name][1](t),
                                                                          rel=1e-9, abs=1e-12)
    d3 = em.grad(em.grad(em.grad(lambda t: t ** 4)))
    assert d3(em.tensor(1.5, dtype=em.float64)).item() == pytest.approx(24 * 1.5)


def test_grad_of_grad_of_a_product_with_two_arguments():
    def f(x, y):
        return (x * x * y).sum()
    # d/dy of (df/dx summed) = d/dy sum(2 x y) = sum(2 x)
    dxy = em.grad(lambda x, y: em.grad(f)(x, y).sum(), argnums=1)
    x, y = em.tensor([1.0, 2.0], dtype=em.float64), em.tensor([3.0, 4.0], dtype=em.float64)
    assert dxy(x, y).tolist() == [2.0, 4.0]


def test_grad_inside_a_function_that_closes_over_the_outer_argument():
    # d/dx [x * d/dy (x * y^2)|_{y=x}] = d/dx [2 x^3] = 6 x^2
    def inner(x):
        return x * em.grad(lambda y: x * y * y)(x)
    assert em.grad(inner)(em.tensor(1.5, dtype=em.float64)).item() == pytest.approx(13.5)


def test_grad_of_an_inner_grad_that_closes_over_a_parameter():
    # d/dw sum(d/dy sum(w * y^2) at y = c) = d/dw sum(2 w c) = 2 c
    c = em.tensor([1.0, -2.0], dtype=em.float64)

    def outer(w):
        return em.grad(lambda y: (w * y * y).sum())(c).sum()
    assert em.grad(outer)(em.tensor([0.3, 0.4], dtype=em.float64)).tolist() == [2.0, -4.0]


def test_grad_with_a_closed_over_constant_equal_to_the_argument():
    a = em.tensor([1.0, 2.0])
    assert em.grad(lambda t: (t * a).sum())(a).tolist() == [1.0, 2.0]
    assert em.grad(lambda t: (t * t).sum())(a).tolist() == [2.0, 4.0]


def test_create_graph_gradients_do_not_leak_into_the_next_step():
    x = em.tensor([2.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    x.grad = None
    (x ** 2).sum().backward()
    assert x.grad.tolist() == [4.0] and not x.grad.requires_grad


# ---------------------------------------------------------------------------
# scenarios run in ember and torch alike: results (or error types) must agree

def _r(t):
    return np.round(_np(t), 5).tolist()


def _double_through_setitem(m):
    x = m.tensor([1.0, 2.0, 3.0], dtype=m.float64, requires_grad=True)
    y = x * 1
    y[1:].mul_(x[:2])
    (g,) = m.autograd.grad((y ** 2).sum(), x, create_graph=True)
    (h,) = m.autograd.grad(g.sum(), x)
    return _r(g), _r(h)


def _backward_inputs(m):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([3.0, 4.0], requires_grad=True)
    (x * w).sum().backward(inputs=[x])
    return _r(x.grad), w.grad


def _grad_of_non_leaf(m):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    (gy,) = m.autograd.grad((y * y).sum(), y)
    return _r(gy)


def _allow_unused(m):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([3.0], requires_grad=True)
    g = m.autograd.grad((x * 2).sum(), [x, w], allow_unused=True)
    return _r(g[0]), g[1]


def _in_place_into_a_constant(m):
    w = m.tensor([1.0, 2.0], requires_grad=True)
    y = m.zeros(2)
    y.add_(w)
    y.mul_(w)
    y.sum().backward()
    return _r(w.grad), y.grad_fn.name()


def _view_after_base_write(m):
    x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = x * 1
    v = b[0:2]
    b.mul_(2)
    name = v.grad_fn.name()
    (v * 3).sum().backward()
    return name, _r(x.grad)


def _saved_view_then_base_write(m):
    x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = x * 1
    v = b[0:2]
    w = v * v
    b.add_(1)
    w.sum().backward()


def _leaf_written_under_no_grad(m):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2  # saves nothing of x
    with m.no_grad():
        x.add_(1)
    y.sum().backward()
    z = x * x  # saves x
    with m.no_grad():
        x.add_(1)
    z.sum().backward()


def _retain_grad_follows_in_place(m):
    x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    y.retain_grad()
    y[0] = 5.0
    (y * y).sum().backward()
    return _r(x.grad), _r(y.grad)


def _retain_graph_twice(m):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    return _r(x.grad)


def _in_place_on_expanded(m):
    x = m.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x.clone()[0].expand(2, 2).add_(1)


def _higher_order_mix(m):
    x = m.tensor([0.5, 1.5, -0.2], dtype=m.float64, requires_grad=True)
    y = m.where(x > 1, x ** 2, x ** 3) + m.softmax(x, 0) * m.cumsum(x * x, 0)
    y = y + m.sort(x).values * x[m.tensor([0, 0, 2])]
    (g,) = m.autograd.grad(y.sum(), x, create_graph=True)
    (h,) = m.autograd.grad((g * g).sum(), x)
    return _r(g), _r(h)


SCENARIOS = [_double_through_setitem, _backward_inputs, _grad_of_non_leaf, _allow_unused,
             _in_place_into_a_constant, _view_after_base_write, _saved_view_then_base_write,
             _leaf_written_under_no_grad, _retain_grad_follows_in_place, _retain_graph_twice,
             _in_place_on_expanded, _higher_order_mix]


@needs_torch
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__.strip("_"))
def test_scenario_matches_torch(scenario):
    results = []
    for m in (em, torch):
        try:
            results.append(scenario(m))
        except RuntimeError as e:
            results.append(("RuntimeError", "in-place" if "inplace" in str(e) or
                            "single memory location" in str(e) else str(e)[:20]))
    assert results[0] == results[1]


def test_grad_of_an_unused_input_says_which():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    w = em.tensor([3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Tensor at index 1 appears to not have been used in "
                       "the graph. Set allow_unused=True"):
        em.autograd.grad((x * 2).sum(), [x, w])
    with pytest.raises(RuntimeError, match="One of the differentiated Tensors does not require"):
        em.autograd.grad((x * 2).sum(), [em.tensor([1.0])])


def test_a_value_recomputed_under_no_grad_is_a_constant_operand():
    # y and z are the same node (hash-consed), but only y carries a gradient
    x = em.tensor([1.0, 2.0], requires_grad=True)
    with em.no_grad():
        z = x * 2
    y = x * 2
    (y * z).sum().backward()
    assert x.grad.tolist() == [4.0, 8.0]
    x.grad = None
    em.where(x > 0, x * 2, z).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]
    x.grad = None
    (x @ x.detach()).backward()
    assert x.grad.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_softmax_gradients_leave_out_the_row_max_as_pytorch_does(name):
    # the gradient through the max they subtract cancels exactly; the records stop
    # there, so the backward graph has no tie-routing of the max (x == max)
    from ember.ir.graph import toposort
    from ember.ir.ops import Op

    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    a[1, 2] = a[1, 3] = a[1].max() + 1  # a tie for the row max
    x = em.tensor(a, requires_grad=True)
    y = getattr(x, name)(1)
    w = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    (g,) = em.autograd.grad((y * em.tensor(w)).sum(), x, create_graph=True)
    ops = [n.op for n in toposort([g.node])]
    assert ops.count(Op.NE) == 0 and ops.count(Op.EQ) == (1 if name == "logsumexp" else 0)
    if torch is not None:
        t = torch.tensor(a, requires_grad=True)
        (getattr(t, name)(1) * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(g.detach().numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)
    # the plan that replays backward() learns the same graph
    x.grad = None
    for _ in range(3):
        (getattr(x, name)(1) * em.tensor(w)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), g.detach().numpy(), rtol=1e-6, atol=1e-7)
        x.grad = None


GRAD_FN_NAMES = ["x.norm()", "x.norm(dim=1, keepdim=True)", "x.max(1)[0]", "x.min(0).values",
                 "x.max(1, keepdim=True)[0]", "x % y", "x % 4", "x.clone().remainder_(y)",
                 "x.clamp(0, 1)", "x.clamp(x, y)", "x.clone().clamp_(min=0)",
                 "x.clone().clamp_(x, y)", "x.clone().fill_(1)", "x.clone().fill_(y[0, 0])",
                 "x.narrow(1, 0, 2)", "x.unbind(0)[-1]", "x[:]", "x[...]", "x // y",
                 "x.clone().floor_divide_(2)", "x.div(y, rounding_mode='floor')",
                 "x.div(2, rounding_mode='trunc')", "x.clone().div_(y, rounding_mode='trunc')",
                 "x.clone().pow_(y)", "x.masked_fill(x > 0, 1)", "x.masked_fill(x > 0, y[0, 0])",
                 "x.clone().masked_fill_(x > 0, 1)", "x.clone().copy_(y)", "x.nanmean()",
                 "x.nanmean(1, keepdim=True)"]


@needs_torch
@pytest.mark.parametrize("form", GRAD_FN_NAMES)
def test_grad_fn_names_and_reprs_as_torch(form):
    """The record names torch gives (repr shows them, and wraps its line by their length)."""
    def run(m):
        x = m.tensor([[1.0, -2.0, 3.0], [0.5, 1.5, -1.0]], dtype=m.float64, requires_grad=True)
        y = m.tensor([[2.0, 1.5, -2.0], [3.0, -1.0, 2.0]], dtype=m.float64, requires_grad=True)
        out = eval(form, {"m": m, "x": x, "y": y})
        return out.grad_fn.name(), repr(out).replace("torch.", "").replace("ember.", "")
    assert run(em) == run(torch)
