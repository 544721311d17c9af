"""The compiler choices that speed up the model steps, and that they change no result.

* A stack of matrices times one matrix is one matrix product (torch's matmul folds it).
* A kernel recomputes a cheap value of another kernel instead of loading it stored
  (ir/passes/recompute.py), where the arrays are too large to stay in cache.
* Scatter-add along an axis adds its rows in rounds, in np.add.at's order.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import fresh_cache  # noqa: F401 (autouse)

import ember as em
from ember.ir.ops import Op
from ember.runtime import compiled
from ember.runtime.compiled import compiled_for
from ember.runtime.interpreter import add_at, evaluate


def rand(*shape, seed=0, grad=False):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return em.tensor(a, requires_grad=grad)


def same_as_interpreter(*tensors) -> None:
    ref = evaluate([t._storage.node for t in tensors])
    for t, r in zip(tensors, ref):
        np.testing.assert_array_equal(t._storage.array(), r.reshape(-1))


def gelu_tanh(x):
    return 0.5 * x * (1 + ((2 / math.pi) ** 0.5 * (x + 0.044715 * x ** 3)).tanh())


# -- one matrix product for a stack of matrices times a matrix -------------------------

def test_batched_input_times_a_matrix_is_one_product_and_its_gradient_one_more():
    x, w = rand(8, 16, 32, grad=True), rand(24, 32, seed=1, grad=True)
    y = x @ w.t()
    assert y.shape == (8, 16, 24) and y.grad_fn.name() == "UnsafeViewBackward0"
    assert [n.shape for n in _nodes(y) if n.op is Op.MATMUL] == [(128, 24)]
    y.sum().backward()
    # the shared matrix's gradient: one product over all 128 rows, no sum over a batch
    np.testing.assert_allclose(w.grad.numpy(), np.ones((128, 24), np.float32).T
                               @ x.detach().numpy().reshape(128, 32), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(
        w.detach().numpy().sum(0), (8, 16, 32)), rtol=1e-5, atol=1e-5)


def _nodes(t):
    seen, stack, out = set(), [t._storage.node], []
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            seen.add(id(n))
            out.append(n)
            stack.extend(n.inputs)
    return out


@pytest.mark.parametrize("shapes", [((2, 3, 4, 5), (5, 6)), ((2, 3, 5), (5,)),
                                    ((0, 3, 5), (5, 2)), ((4, 1, 5), (5, 3))])
def test_folded_matmul_matches_numpy_forward_and_backward(shapes):
    a_shape, b_shape = shapes
    a, b = rand(*a_shape, grad=True), rand(*b_shape, seed=1, grad=True)
    y = a @ b
    ref = a.detach().numpy() @ b.detach().numpy()
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    y.sum().backward()
    ones = np.ones(ref.shape, np.float32)
    bn = b.detach().numpy()
    ga = ones[..., None] * bn if bn.ndim == 1 else ones @ bn.T
    np.testing.assert_allclose(a.grad.numpy(), ga, rtol=1e-5, atol=1e-5)


# -- recomputing cheap values where they are read -----------------------------------------

def test_gelu_forward_kernel_stores_its_tanh_not_its_intermediates(monkeypatch):
    sources = []
    real = compiled._exec
    monkeypatch.setattr(compiled, "_exec", lambda src: sources.append(src) or real(src))
    # 64 x 64 x 64 float32: 1 MiB arrays, as large as recomputing needs
    x, w = rand(64, 64, 64, grad=True), rand(64, 64, seed=2)
    g = rand(64, 64, 64, seed=1)

    def step(x):
        y = gelu_tanh(x)
        # the backward reads the forward through a matmul, as in an MLP
        (grad,) = em.autograd.grad(((y @ w) * g).square().sum(), [x])
        return y.detach(), grad

    y, grad = em.compile(step)(x)
    source = max(sources, key=len)
    (forward,) = [k for k in _kernels(source) if "np.tanh(" in source.split(
        f"def {k}")[1].split("\ndef ")[0]]
    # stored: the output and the tanh; the backward recomputes 0.5 x, 1 + t, 1 - t * t, ...
    # from them and x (seven arrays were stored)
    assert _stores(source, forward) == 2
    lazy_y, lazy_grad = step(x)
    np.testing.assert_array_equal(y.numpy(), lazy_y.numpy())
    np.testing.assert_array_equal(grad.numpy(), lazy_grad.numpy())
    torch = pytest.importorskip("torch")
    tx = torch.from_numpy(x.detach().numpy()).requires_grad_()
    ty = torch.nn.functional.gelu(tx, approximate="tanh")
    tz = ty @ torch.from_numpy(w.numpy())
    (tg,) = torch.autograd.grad((tz * torch.from_numpy(g.numpy())).square().sum(), [tx])
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad.numpy(), tg.numpy(), rtol=1e-4, atol=1e-3)


def _kernels(source: str) -> list[str]:
    return [line[4:line.index("(")] for line in source.splitlines()
            if line.startswith("def k") and "_tile(" not in line]


def _stores(source: str, name: str) -> int:
    """How many arrays kernel `name` of a generated program stores."""
    for line in source.splitlines():
        if line.startswith(f"def {name}("):
            return sum(1 for p in line[line.index("(") + 1:line.index(")")].split(", ")
                       if p.startswith("o"))
    raise AssertionError(f"no kernel {name}")


def test_values_read_again_across_kernels_stay_bit_identical():
    x, w = rand(64, 64, 64), rand(64, 64, seed=1)
    a = x * 0.5          # cheap over a stored x
    t = (a + 1).tanh()   # costly
    b, c = t * t, 1 - t  # cheap over t
    h = (a * t) @ w      # a matmul between the kernels that read them
    out = (h + b - c * a).sum(2)
    em.realize(out)
    same_as_interpreter(out)


def test_small_arrays_are_stored_not_recomputed():
    x, w = rand(8, 16), rand(16, 16, seed=1)
    a = x * 0.5
    t = a.tanh()
    out = ((a * t) @ w) * (a + t)
    entry = compiled_for(out)
    assert "np.tanh(" in entry.source and entry.source.count("np.tanh(") == 1
    em.realize(out)
    same_as_interpreter(out)


def test_recompute_never_feeds_a_matmul_from_a_tile():
    x, w = rand(128, 128, 64), rand(64, 64, seed=1)
    a = x * 2 + 1              # cheap: a matmul reads it whole, so it stays stored
    y = (a @ w).tanh() + a.sum(2, keepdim=True)
    em.realize(y)
    same_as_interpreter(y)


def test_a_transformer_step_compiled_matches_uncompiled():
    """tanh-GELU, attention and layer norm at sizes that recompute, compiled and lazy."""
    F = em.nn.functional
    em.manual_seed(0)
    lin1, lin2 = em.nn.Linear(64, 256), em.nn.Linear(256, 64)
    ln = em.nn.LayerNorm(64)
    params = [*lin1.parameters(), *lin2.parameters(), *ln.parameters()]

    def step(x):
        h = ln(x)
        q = h.view(32, 64, 4, 16).transpose(1, 2)
        att = F.scaled_dot_product_attention(q, q, q, is_causal=True)
        h = h + att.transpose(1, 2).reshape(32, 64, 64)
        loss = lin2(F.gelu(lin1(h), approximate="tanh")).square().mean()
        loss.backward()
        return loss.detach()

    x = rand(32, 64, 64)
    lazy = step(x).item()
    lazy_grads = [p.grad.numpy().copy() for p in params]
    for p in params:
        p.grad = None
    compiled = em.compile(step)(x).item()
    assert compiled == lazy
    for p, want in zip(params, lazy_grads):
        np.testing.assert_array_equal(p.grad.numpy(), want)


# -- scatter-add in rounds -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, n, axis", [((96, 64), 2048, 0), ((5, 7, 3), 40, 1),
                                            ((10, 3), 100, 0), ((3, 4, 5), 50, 2),
                                            ((1000, 4), 3, 0), ((3, 3), 200, 0)])
def test_add_at_adds_as_np_add_at_bit_for_bit(dtype, shape, n, axis):
    rng = np.random.default_rng(n)
    out = rng.standard_normal(shape).astype(dtype)
    out.flat[::5] = -0.0
    idx = rng.integers(0, shape[axis], n)
    src = rng.standard_normal(shape[:axis] + (n,) + shape[axis + 1:]).astype(dtype)
    src.flat[::3] = -0.0
    src.flat[::11] = np.nan
    want = out.copy()
    np.add.at(want, (slice(None),) * axis + (idx,), src)
    add_at(out, axis, idx, src)
    assert out.tobytes() == want.tobytes()


def test_add_at_keeps_np_add_at_for_what_it_checks_and_wraps():
    out = np.zeros((4, 2), np.float32)
    add_at(out, 0, np.array([-1, 0, -1]), np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(out[:, 0], [1, 0, 0, 2])
    with pytest.raises(IndexError):
        add_at(out, 0, np.array([0, 4]), np.ones((2, 2), np.float32))


def test_embedding_gradient_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((96, 64)).astype(np.float32)
    codes = rng.integers(0, 96, (32, 64))
    g = rng.standard_normal((32, 64, 64)).astype(np.float32)
    ew = em.tensor(w, requires_grad=True)
    (em.nn.functional.embedding(em.tensor(codes), ew) * em.tensor(g)).sum().backward()
    tw = torch.from_numpy(w).requires_grad_()
    (torch.nn.functional.embedding(torch.from_numpy(codes), tw) * torch.from_numpy(g)).sum() \
        .backward()
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-5)


# -- relu's value through its gradient's mask ------------------------------------------------

def test_tracked_relu_selects_once_and_keeps_torchs_values_and_gradient():
    x = em.tensor(np.array([-1.0, -0.0, 0.0, 2.0, np.nan], np.float32), requires_grad=True)
    y = x.relu()
    source = compiled_for(y).source
    assert sum(source.count(f) for f in ("_select(", "_where(", "np.where(")) == 1
    got = y.detach().numpy()
    assert got.tobytes() == np.array([0.0, -0.0, 0.0, 2.0, np.nan], np.float32).tobytes()
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0, 1.0, 1.0])


def test_a_program_compiled_whole_recomputes_nothing():
    """Whole programs serve every size of a dynamic dimension: no choice may depend on a
    size there, and recomputing depends on the arrays' size."""
    from ember.codegen.backend import NumpyBackend
    from ember.ir.graph import Graph
    from ember.ir.passes.pipeline import lower

    x = rand(64, 64, 64, grad=True)
    w = rand(64, 64, seed=1)
    (grad,) = em.autograd.grad((gelu_tanh(x) @ w).square().sum(), [x], create_graph=True)
    graph = Graph((grad._storage.node,) if hasattr(grad, "_storage") else (grad.node,))
    tiled, whole = NumpyBackend(), NumpyBackend()
    whole.tiled_above = float("inf")
    counts = []
    for target in (tiled, whole):
        plan = lower(graph, backend=target)
        counts.append(sum(len(g.recomputed) for g in plan.fusion.groups))
    assert counts[0] > 0 and counts[1] == 0
