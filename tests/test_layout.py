"""Result layouts: an elementwise result is laid out as PyTorch lays it out.

`x.T * 2` keeps x's memory order (strides (1, n)), as torch's TensorIterator
does, so its kernel reads x in order instead of across; the first operand
decides unless it broadcasts, `clone()` and `to(dtype)` preserve the layout,
reductions and `contiguous()` give row-major results.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import needs_torch, torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ember as em
from ember.runtime import cache, options
from ember.runtime.compiled import compiled_for

X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
Y = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
Z = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)

# name: (fn(m, x, y, z), ember's strides (as torch gives them))
CASES = {
    "unary on x.T": (lambda m, x, y, z: x.T * 2, (1, 4)),
    "x.T + contiguous": (lambda m, x, y, z: x.T + y.T.contiguous(), (1, 4)),
    "contiguous + x.T": (lambda m, x, y, z: y.T.contiguous() + x.T, (3, 1)),
    "x.T + row": (lambda m, x, y, z: x.T + y[0, :3], (1, 4)),
    "row + x.T": (lambda m, x, y, z: y[0, :3] + x.T, (1, 4)),
    "x.T + column": (lambda m, x, y, z: x.T + y.T[:, :1], (1, 4)),
    "number - x.T": (lambda m, x, y, z: 1 - x.T, (1, 4)),
    "strided, not permuted": (lambda m, x, y, z: x[:, ::2] * 2, (2, 1)),
    "permuted, not dense": (lambda m, x, y, z: x.T[1:] * 2, (1, 3)),
    "chain": (lambda m, x, y, z: ((x.T * 2).exp() + 1).sigmoid(), (1, 4)),
    "where": (lambda m, x, y, z: m.where(x.T > 0.5, x.T, 0.0), (1, 4)),
    "clamp": (lambda m, x, y, z: x.T.clamp(min=0.3), (1, 4)),
    "compare": (lambda m, x, y, z: x.T > 0.5, (1, 4)),
    "relu": (lambda m, x, y, z: x.T.relu(), (1, 4)),
    "clone": (lambda m, x, y, z: x.T.clone(), (1, 4)),
    "to(dtype)": (lambda m, x, y, z: x.T.double(), (1, 4)),
    "contiguous": (lambda m, x, y, z: x.T.contiguous(), (3, 1)),
    "reduction": (lambda m, x, y, z: (x.T * 2).sum(0), (1,)),
    "transposed back": (lambda m, x, y, z: x.T.abs().T, (4, 1)),
    "3-d permute": (lambda m, x, y, z: z.permute(2, 0, 1) * 2, (1, 12, 4)),
    "3-d permutes": (lambda m, x, y, z: z.permute(1, 2, 0).sin() + z.permute(1, 2, 0),
                     (4, 1, 12)),
    "size-1 dim": (lambda m, x, y, z: z[:, :1].permute(2, 1, 0) * 3, (1, 4, 4)),
    "3-d permute, unary": (lambda m, x, y, z: z.permute(1, 2, 0).exp(), (4, 1, 12)),
    "3-d permute + broadcast": (lambda m, x, y, z: z.permute(2, 0, 1) + z[0, 0].reshape(4, 1, 1),
                                (1, 12, 4)),
    "3-d permutes, mixed": (lambda m, x, y, z: z.permute(2, 0, 1) + z.permute(2, 1, 0)
                            .permute(0, 2, 1), (1, 12, 4)),
    "4-d permute": (lambda m, x, y, z: z.reshape(2, 3, 2, 2).permute(2, 0, 3, 1).sin(),
                    (2, 12, 1, 4)),
    "flip": (lambda m, x, y, z: x.flip(0), (4, 1)),
    "flip of x.T": (lambda m, x, y, z: x.T.flip(0), (1, 4)),
    "flip of x.T, both dims": (lambda m, x, y, z: x.T.flip((0, 1)), (1, 4)),
    "flip of 3-d permute": (lambda m, x, y, z: z.permute(2, 0, 1).flip(1), (1, 12, 4)),
    "flip of 3-d permute, dim 0": (lambda m, x, y, z: z.permute(1, 2, 0).flip(0), (4, 1, 12)),
    "flip, strided": (lambda m, x, y, z: x[:, ::2].flip(0), (2, 1)),
    "isnan of a transposed bool": (lambda m, x, y, z: (x > 0).T.isnan(), (1, 4)),
    "isinf of a transposed int": (lambda m, x, y, z: x.long().T.isinf(), (1, 4)),
    "isfinite of a permuted int": (lambda m, x, y, z: z.int().permute(2, 0, 1).isfinite(),
                                   (1, 12, 4)),
    "zeros_like": (lambda m, x, y, z: m.zeros_like(z.permute(2, 0, 1)), (1, 12, 4)),
    "ones_like, strided": (lambda m, x, y, z: m.ones_like(x.T[::2]), (1, 2)),
    "full_like, dtype": (lambda m, x, y, z: m.full_like(x.T, 3, dtype=m.int32), (1, 4)),
    "empty_like, 0-filled": (lambda m, x, y, z: m.empty_like(x.T).zero_(), (1, 4)),
    "index of a permute": (lambda m, x, y, z: z.permute(2, 1, 0)[m.tensor([1, 0, -3])],
                           (6, 1, 3)),
    "index of a permute, inner dim": (lambda m, x, y, z: z.permute(2, 1, 0)[:, m.tensor([1, 0])],
                                      (1, 4, 8)),
    "index, last dim": (lambda m, x, y, z: z.permute(2, 1, 0)[..., m.tensor([1, 0])],
                        (2, 8, 1)),
    "index, two dims apart": (lambda m, x, y, z: z.permute(2, 1, 0)[m.tensor([1, 0]), :,
                                                                    m.tensor([0, 1])], (3, 1)),
    "index by a transposed index": (lambda m, x, y, z: x[m.tensor([[0, 1, 2], [2, 1, 0]]).T],
                                    (4, 12, 1)),
    "index of a contiguous": (lambda m, x, y, z: z[:, m.tensor([2, 0])], (8, 4, 1)),
    "ge of a transpose and its base": (lambda m, x, y, z: x.T[:3] >= x[:, :3], (1, 3)),
    "gt of a transpose and a number": (lambda m, x, y, z: m.gt(x.T, 0.5), (1, 4)),
    "lt of a base and its transpose": (lambda m, x, y, z: x[:, :3] < x.T[:3], (3, 1)),
    "masked_fill is row-major": (lambda m, x, y, z: x.T.masked_fill(x.T > 0, 0.5), (3, 1)),
    "index_select is row-major": (lambda m, x, y, z: z.permute(2, 1, 0).index_select(
        1, m.tensor([1, 0])), (4, 2, 1)),
}


def _run(m, fn):
    make = em.from_numpy if m is em else torch.from_numpy
    return fn(m, make(X.copy()), make(Y.copy()), make(Z.copy()))


@pytest.mark.parametrize("name", list(CASES))
def test_elementwise_results_are_laid_out_as_pytorch_lays_them_out(name):
    fn, strides = CASES[name]
    got = _run(em, fn)
    assert got.stride() == strides
    with em.eager():  # the reference interpreter, op by op
        ref = _run(em, fn)
    assert ref.stride() == strides
    np.testing.assert_array_equal(got.numpy(), ref.numpy())
    if torch is not None:
        ref = _run(torch, fn)
        assert got.stride() == tuple(ref.stride())
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-6)


def test_a_transposed_chain_is_one_kernel_reading_memory_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(options, "cache_dir", str(tmp_path))
    cache.clear()
    a = np.random.default_rng(3).standard_normal((300, 200)).astype(np.float32)
    x = em.from_numpy(a)
    y = ((x.T * 1.5 + 0.5).clamp(min=-0.25)).abs()
    entry = compiled_for(y)
    assert entry.kernels == 1
    assert "transpose" not in entry.source and "_strided" not in entry.source
    want = np.abs(np.maximum(a.T * np.float32(1.5) + np.float32(0.5), np.float32(-0.25)))
    np.testing.assert_array_equal(y.numpy(), want)
    assert y.stride() == (1, 200)


def test_a_permuted_result_is_no_flat_view_but_reshapes_and_contiguous_copies():
    y = em.from_numpy(X.copy()).T * 2
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        y.view(-1)
    np.testing.assert_array_equal(y.reshape(-1).numpy(), (X.T * 2).reshape(-1))
    c = y.contiguous()
    assert c.stride() == (3, 1) and c.is_contiguous() and not y.is_contiguous()


def test_layouts_in_eager_mode_and_under_compile_match_lazy():
    x = em.from_numpy(X.copy())
    lazy = ((x.T * 2).exp() + 1)
    with em.eager():
        eager = ((x.T * 2).exp() + 1)
    compiled = em.compile(lambda v: (v.T * 2).exp() + 1)(x)
    for t in (eager, compiled):
        assert t.stride() == lazy.stride() == (1, 4)
        np.testing.assert_array_equal(t.numpy(), lazy.numpy())


@needs_torch
def test_gradients_flow_through_a_flip_of_a_permuted_tensor():
    got = []
    for m in (em, torch):
        z = m.tensor(Z.astype(np.float64), requires_grad=True)
        w = m.tensor(np.arange(24.0).reshape(4, 2, 3))
        (z.permute(2, 0, 1).flip(1) * w).sum().backward()
        got.append(z.grad.numpy())
    np.testing.assert_array_equal(got[0], got[1])


def test_gradients_flow_through_permuted_results():
    a = em.tensor(X.astype(np.float64), requires_grad=True)
    w = em.tensor(Y.T.astype(np.float64).copy(), requires_grad=True)
    loss = ((a.T * w).exp() * a.T.sin()).sum()
    loss.backward()
    ga = (np.exp(X.T * Y.T) * Y.T * np.sin(X.T) + np.exp(X.T * Y.T) * np.cos(X.T)).T
    gw = X.T * np.exp(X.T * Y.T) * np.sin(X.T)
    np.testing.assert_allclose(a.grad.numpy(), ga, rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), gw, rtol=1e-6)


# -- property: random operands in random layouts -------------------------------------

OPS = ["add", "mul", "rsub", "where", "clamp", "exp_add", "maximum", "double", "sum_back"]


@st.composite
def layouts(draw):
    nd = draw(st.integers(2, 3))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    perm = tuple(draw(st.permutations(range(nd))))
    keep = [draw(st.booleans()) for _ in range(nd)]
    other = tuple(s if k else 1 for s, k in zip(shape, keep))[draw(st.integers(0, 1)):]
    other_perm = tuple(draw(st.permutations(range(len(other)))))
    return shape, perm, other, other_perm, draw(st.sampled_from(OPS)), draw(st.integers(0, 99))


def _program(m, make, case):
    shape, perm, other, other_perm, op, seed = case
    rng = np.random.default_rng(seed)
    a = rng.standard_normal([shape[p] for p in np.argsort(perm)])
    b = rng.standard_normal([other[p] for p in np.argsort(other_perm)])
    leaf = make(a)
    x = leaf.permute(*perm)
    y = make(b).permute(*other_perm) if other else make(b)
    if op == "add":
        return leaf, x + y
    if op == "mul":
        return leaf, y * x
    if op == "rsub":
        return leaf, 2.0 - x
    if op == "where":
        return leaf, m.where(y > 0, x, y)
    if op == "clamp":
        return leaf, x.clamp(min=-0.5, max=0.5)
    if op == "exp_add":
        return leaf, (x.exp() + y).sin()
    if op == "maximum":
        return leaf, m.maximum(x * 2, x)
    if op == "double":
        return leaf, x.float() * 3
    return leaf, (x * x.sum(-1, keepdim=True)).transpose(0, -1)


@given(case=layouts())
@settings(deadline=None)
def test_random_layouts_match_the_interpreter_and_torch(case):
    make = lambda v: em.tensor(v, requires_grad=True)  # noqa: E731
    x, got = _program(em, make, case)
    (got.square().sum()).backward()
    with em.eager():
        xe, ref = _program(em, make, case)
        (ref.square().sum()).backward()
    np.testing.assert_array_equal(got.detach().numpy(), ref.detach().numpy())
    assert got.stride() == ref.stride()
    np.testing.assert_allclose(x.grad.numpy(), xe.grad.numpy(), rtol=1e-12)
    if torch is not None:
        tmake = lambda v: torch.tensor(v, requires_grad=True)  # noqa: E731
        tx, want = _program(torch, tmake, case)
        (want.square().sum()).backward()
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-12)
        # PyTorch gives a size-1 dim whatever stride; the others must agree
        assert all(s == w for s, w, n in zip(got.stride(), want.stride(), want.shape) if n > 1)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)


@needs_torch
def test_nonzero_is_column_major_as_torch():
    for make in (lambda m: m.tensor([[1.0, 0.0, 3.0], [0.5, 1.5, 0.0]]),
                 lambda m: m.tensor([0, 2, 0, 4]), lambda m: m.zeros(2, 3)):
        got, want = make(em).nonzero(), make(torch).nonzero()
        assert got.tolist() == want.tolist()
        assert [s for s, n in zip(got.stride(), got.shape) if n > 1] == [
            s for s, n in zip(want.stride(), want.shape) if n > 1]
