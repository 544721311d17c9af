"""Fusion: how many kernels known patterns compile to, and that they stay correct.

`compiled_for(*tensors)` compiles what realising the tensors would run and
reports its kernels; the values are then checked against the interpreter.
"""

from __future__ import annotations

import numpy as np
import pytest
from ember.ir.ops import Op
from ember.runtime import cache, options
from ember.runtime.compiled import compiled_for
from ember.runtime.interpreter import evaluate

import ember as em


@pytest.fixture(autouse=True)
def _fresh(tmp_path):
    saved = options.cache_dir, options.tile_elems, options.backend
    options.cache_dir, options.backend = str(tmp_path), "auto"
    cache.clear()
    yield
    options.cache_dir, options.tile_elems, options.backend = saved


def rand(*shape, seed=0):
    return em.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def kernels(*tensors) -> int:
    return compiled_for(*tensors).kernels


def agrees(*tensors, rtol=0.0) -> None:
    nodes = [t._storage.node for t in tensors]
    ref = evaluate(nodes)
    for t, r in zip(tensors, ref):
        got = t._storage.array()
        if rtol:
            np.testing.assert_allclose(got, r, rtol=rtol, atol=1e-7)
        else:
            np.testing.assert_array_equal(got, r)


def chain8(x):
    return ((x * 2 + 1).abs().maximum(x) * 3 - 1).abs() + x


@pytest.mark.parametrize("n", [1000, 1 << 17])
def test_eight_op_chain_is_one_kernel(n):
    x = rand(n)
    y = chain8(x)
    assert kernels(y) == 1
    agrees(y)


def test_softmax_is_one_kernel():
    options.tile_elems = 64  # rows in blocks, several per kernel call
    x = rand(64, 33)
    y = x.softmax(-1)
    entry = compiled_for(y)
    assert entry.kernels == 1
    assert "tiled on axis 0" in entry.report
    agrees(y)


def test_layer_norm_is_one_kernel():
    x, w, b = rand(32, 48), rand(48, seed=1), rand(48, seed=2)
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    y = (x - mean) / (var + 1e-5).sqrt() * w + b
    assert kernels(y) == 1
    agrees(y)


def test_linear_bias_relu_is_one_matmul_kernel_with_epilogue():
    x, w, b = rand(16, 32), rand(8, 32, seed=1), rand(8, seed=2)
    y = (x @ w.T + b).relu()
    entry = compiled_for(y)
    assert entry.kernels == 1
    assert "matmul" in entry.report and "where" in entry.report
    agrees(y)


def test_shared_expensive_value_is_computed_once():
    x = rand(100)
    e = x.exp()
    a, b = e.sum(), e * 2
    entry = compiled_for(a, b)
    assert entry.source.count("np.exp(") == 1
    agrees(a, b)


def test_refusals_are_recorded_with_reasons(capsys):
    x, w = rand(8, 8), rand(8, 8, seed=1)
    a = x.exp()
    y = a + a @ w  # joining `a`'s kernel would make a cycle through the matmul
    options.debug, saved = 2, options.debug
    try:
        entry = compiled_for(y)
    finally:
        options.debug = saved
    assert "not fused" in entry.report and "cycle" in entry.report
    err = capsys.readouterr().err
    assert "cycle" in err and "def program" in err
    agrees(y)


def test_column_reduction_then_broadcast_is_one_whole_kernel():
    # NOTE: column blocks would sum in another order than the whole array, so
    # a reduction over leading axes is not tiled (results stay bit-identical)
    options.tile_elems = 64
    x = rand(40, 30)
    y = x / x.sum(0, keepdim=True)
    entry = compiled_for(y)
    assert entry.kernels == 1 and "tiled" not in entry.report
    agrees(y)


def test_row_reductions_are_tiled_and_bit_identical():
    options.tile_elems = 64
    x = rand(50, 7, 9)
    y = x.exp().sum(2, keepdim=True) * x.amax(1, keepdim=True)
    assert "tiled on axis 0" in compiled_for(y).report
    agrees(y)


def test_mlp_backward_matches_the_interpreter():
    options.tile_elems = 256
    rng = np.random.default_rng(0)
    x = em.tensor(rng.standard_normal((16, 12)).astype(np.float32))
    w1 = em.tensor(rng.standard_normal((12, 20)).astype(np.float32), requires_grad=True)
    w2 = em.tensor(rng.standard_normal((20, 5)).astype(np.float32), requires_grad=True)
    loss = (x @ w1).relu().matmul(w2).log_softmax(1).mean()
    loss.backward()
    got = [w1.grad.numpy().copy(), w2.grad.numpy().copy()]
    options.backend, saved = "interpreter", options.backend
    try:
        w1.grad = w2.grad = None
        loss = (x @ w1).relu().matmul(w2).log_softmax(1).mean()
        loss.backward()
        ref = [w1.grad.numpy(), w2.grad.numpy()]
    finally:
        options.backend = saved
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g, r)


def test_every_group_kind_is_described():
    from ember.ir.passes.fusion import KERNEL_OPS
    assert Op.MATMUL in KERNEL_OPS and Op.REDUCE_SUM in KERNEL_OPS
