"""Hypothesis-generated graphs: compiled NumPy kernels against the reference interpreter.

A drawn program is a list of steps over a stack of tensors (elementwise with
broadcasting, views, reductions, matmul), built through the public API from
the same NumPy inputs twice: once realised on the compiled path (with 16
elements per tile, so tiling and threads are exercised), once on the
interpreter. Forward values and the gradients of a scalar loss must agree to
float32 rounding (rtol 1e-5; NaN where the interpreter has NaN).

NOTE: not bit for bit here: the interpreter's intermediate arrays take the
memory layout NumPy gives them (a ufunc over a transposed view returns a
Fortran-ordered array), the compiled kernels' are C-ordered, and a NumPy
reduction over several axes sums in memory order. Single ops, where the layouts
agree, are compared bit for bit in test_compiled_ops.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ember as em
from ember.runtime import cache, options

UNARY = ["exp", "tanh", "sin", "abs", "neg", "sigmoid", "relu", "square", "sqrt_abs", "erf",
         "atan", "sinh"]
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum"]
REDUCE = ["sum", "amax", "mean"]
VIEW = ["t", "flip", "slice", "reshape", "unsqueeze_expand"]


@pytest.fixture(autouse=True)
def _small_tiles(tmp_path):
    saved = options.tile_elems, options.cache_dir, options.num_threads, options.backend
    options.tile_elems, options.cache_dir, options.num_threads = 16, str(tmp_path), 2
    options.backend = "auto"
    yield
    options.tile_elems, options.cache_dir, options.num_threads, options.backend = saved


def apply(step, stack, rng_arrays):
    kind, name, k = step
    x = stack[-1]
    if kind == "unary":
        if name == "sqrt_abs":
            return x.abs().sqrt()
        if name == "square":
            return x * x
        return getattr(x, name)()
    if kind == "binary":
        other = stack[k % len(stack)]
        r, c = x.shape
        shape = [(r, c), (r, 1), (1, c), ()][k % 4]
        if other.shape != x.shape:
            other = x
        if shape != (r, c):
            other = other.sum(1, keepdim=True) if shape == (r, 1) else (
                other.amax(0, keepdim=True) if shape == (1, c) else other.mean())
        return getattr(x, name)(other) if name not in ("maximum", "minimum") else \
            getattr(em, name)(x, other)
    if kind == "reduce":
        axis = k % 2
        return getattr(x, name)(axis, keepdim=True).expand(*x.shape)
    if kind == "view":
        r, c = x.shape
        if name == "t":
            return x.t().contiguous().t() * 1.5 if r != c else x.t()
        if name == "flip":
            return x.flip(k % 2)
        if name == "slice":
            return (x[::2] if r > 1 else x).repeat(2, 1)[:r]
        if name == "reshape":
            return x.reshape(c, r).t()
        return x[:, :1].expand(r, c) + x
    w = rng_arrays[k % len(rng_arrays)]
    c = x.shape[1]
    return x @ em.tensor(w[:c, :c] if w.shape[0] >= c else np.eye(c, dtype=np.float32))


steps = st.one_of(
    st.tuples(st.just("unary"), st.sampled_from(UNARY), st.integers(0, 9)),
    st.tuples(st.just("binary"), st.sampled_from(BINARY), st.integers(0, 9)),
    st.tuples(st.just("reduce"), st.sampled_from(REDUCE), st.integers(0, 9)),
    st.tuples(st.just("view"), st.sampled_from(VIEW), st.integers(0, 9)),
    st.tuples(st.just("matmul"), st.just(""), st.integers(0, 9)),
)


def run(program, data, weights, grads: bool):
    x = em.tensor(data, requires_grad=grads)
    stack = [x]
    for step in program:
        stack.append(apply(step, stack, weights))
    outs = [t for t in stack[1:]]
    if grads:
        loss = sum((t * (i + 1)).sum() for i, t in enumerate(outs[-3:]))
        loss.backward()
        return [loss.detach().numpy(), x.grad.numpy()]
    em.realize(*outs)
    return [t.numpy() for t in outs]


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    scale = max(1.0, float(np.nanmax(np.abs(np.where(np.isinf(b), 0, b)), initial=0)))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * scale)


@given(program=st.lists(steps, min_size=1, max_size=8),
       shape=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       seed=st.integers(0, 2**16), grads=st.booleans())
def test_random_graphs_match_the_interpreter(program, shape, seed, grads):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(shape).astype(np.float32)
    weights = [rng.standard_normal((9, 9)).astype(np.float32) / 3 for _ in range(2)]
    got = run(program, data, weights, grads)
    saved = options.backend
    options.backend = "interpreter"
    try:
        ref = run(program, data, weights, grads)
    finally:
        options.backend = saved
    for g, r in zip(got, ref):
        same(g, r)
    assert cache.stats().misses >= 1
