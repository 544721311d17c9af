"""Fusion: how many kernels known patterns compile to, and that they stay correct.

`compiled_for(*tensors)` compiles what realising the tensors would run and
reports its kernels; the values are then checked against the interpreter.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from helpers import fresh_cache  # noqa: F401 (autouse)

import ember as em
from ember.ir.ops import Op
from ember.runtime import options
from ember.runtime.compiled import compiled_for
from ember.runtime.interpreter import evaluate


def rand(*shape, seed=0):
    return em.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def kernels(*tensors) -> int:
    return compiled_for(*tensors).kernels


def agrees(*tensors, rtol=0.0) -> None:
    nodes = [t._storage.node for t in tensors]
    ref = evaluate(nodes)
    for t, r in zip(tensors, ref):
        got, r = t._storage.array(), r.reshape(-1)  # a storage's value is flat once realised
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


def test_refusals_are_recorded_with_reasons(caplog):
    x, w = rand(8, 8), rand(8, 8, seed=1)
    a = x.exp()
    y = a + a @ w  # joining `a`'s kernel would make a cycle through the matmul
    options.debug, saved = 2, options.debug
    try:
        with caplog.at_level(logging.DEBUG, logger="ember"):
            entry = compiled_for(y)
    finally:
        options.debug = saved
    assert "not fused" in entry.report and "cycle" in entry.report
    said = caplog.text
    assert "cycle" in said and "def program" in said
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


# ---- the passes one by one -------------------------------------------------------------

def _graph(*nodes):
    from ember.ir.graph import Graph
    return Graph(nodes)


def _leaf(n=8, dtype=None):
    from ember.ir import dtypes as dt
    from ember.runtime import buffers
    buf = buffers.Buffer(np.arange(n, dtype=np.float32))
    _LEAVES.append(buf)
    return buffers.buffer_node(buf, dtype or dt.float32)


_LEAVES: list = []


def _fold(n):
    from ember.runtime.compiled import _fold as fold
    return fold(n)


def test_simplify_folds_constants_and_exact_identities():
    from ember.ir import build as b
    from ember.ir import dtypes as dt
    from ember.ir.node import const, node
    from ember.ir.passes.simplify import simplify
    x = _leaf()
    c = node(Op.ADD, (const(2.0, dt.float32, (8,)), const(3.0, dt.float32, (8,))))
    y = node(Op.MUL, (node(Op.MUL, (x, c)), const(1.0, dt.float32, (8,))))
    z = node(Op.NEG, (node(Op.NEG, (y,)),))
    w = node(Op.ADD, (z, const(0.0, dt.float32, (8,))))  # x + 0.0 is not x for x = -0.0
    g = simplify(_graph(w), fold=_fold)
    assert [n.op for n in g.nodes] == [Op.BUFFER, Op.CONST, Op.MUL, Op.CONST, Op.ADD]
    assert g.nodes[1].arg == 5.0
    cast = b.cast(b.cast(x, dt.float64), dt.float32)  # a lossless round trip
    assert simplify(_graph(cast)).outputs[0] is x
    lossy = b.cast(b.cast(x, dt.float16), dt.float32)
    assert simplify(_graph(lossy)).outputs[0] is lossy


def test_simplify_joins_a_where_over_a_where_whose_condition_one_implies():
    from ember.ir import build as b
    from ember.ir.node import node
    from ember.ir.passes.simplify import simplify
    x = _leaf()
    zero = b.like(x, 0)
    lt, le = node(Op.LT, (x, zero)), node(Op.LE, (x, zero))
    inner = b.where(lt, zero, x)  # relu's value
    assert simplify(_graph(b.where(le, inner, x))).outputs[0] is inner
    # the other way round: x <= 0 holds wherever x < 0 does
    out = simplify(_graph(b.where(lt, b.where(le, zero, x), x))).outputs[0]
    assert out is inner
    other = b.where(node(Op.LT, (zero, x)), zero, x)  # a condition neither implies
    kept = b.where(le, other, x)
    assert simplify(_graph(kept)).outputs[0] is kept
    # bit for bit as the interpreter (-0.0, NaN, infinities), and relu's gradient
    v = np.array([-1.0, -0.0, 0.0, 2.0, np.nan, -np.inf, np.inf], np.float32)
    t = em.tensor(v, requires_grad=True)
    y = t.relu()
    (y * em.tensor(np.arange(7, dtype=np.float32))).sum().backward()
    got = y.detach().numpy()
    assert np.array_equal(got.view(np.uint32)[[0, 1, 2, 3, 5, 6]],
                          np.array([0.0, -0.0, 0.0, 2.0, 0.0, np.inf], np.float32).view(np.uint32))
    assert np.isnan(got[4])
    assert t.grad.tolist() == [0.0, 0.0, 0.0, 3.0, 4.0, 0.0, 6.0]


def test_simplify_composes_movement_chains_into_one_view():
    from ember.ir import build as b
    from ember.ir.node import node
    from ember.ir.passes.simplify import simplify
    x = _leaf(24)
    chain = b.permute(b.reshape(x, (2, 3, 4)), (2, 0, 1))
    y = node(Op.SLICE, (chain,), ((0, 4, 2), (0, 2, 1), (1, 3, 1)))
    out = simplify(_graph(y)).outputs[0]
    assert out.op is Op.AS_STRIDED and out.inputs[0] is x
    assert out.arg.shape == (2, 2, 2) and out.arg.strides == (2, 12, 4) and out.arg.offset == 4


def test_verifier_rejects_malformed_graphs_and_is_on_in_tests():
    from ember.ir import dtypes as dt
    from ember.ir.node import node
    from ember.ir.passes.verify import GraphError, verify
    assert options.verify
    x = _leaf()
    bad = node(Op.EXP, (x,), None, dt.float64, (8,))  # EXP keeps its input's dtype
    with pytest.raises(GraphError, match="should be f32"):
        verify(_graph(bad))
    from ember.ir.view import View
    out_of_bounds = node(Op.AS_STRIDED, (x,), View((4,), (3,), 0), dt.float32, (4,))
    with pytest.raises(GraphError, match="reads"):
        verify(_graph(out_of_bounds))


def test_verifier_accepts_an_empty_view_at_any_offset():
    """torch's `x[2, ::2].narrow(0, 1, 0)` of an 8-element x starts past its end."""
    from ember.ir import dtypes as dt
    from ember.ir.node import node
    from ember.ir.passes.verify import verify
    from ember.ir.view import View
    x = _leaf()
    for offset in (0, 8, 10):
        verify(_graph(node(Op.AS_STRIDED, (x,), View((0,), (2,), offset), dt.float32, (0,))))


def test_memory_plan_reuses_dead_intermediates_and_reports_peak():
    from ember.ir.graph import Graph
    from ember.ir.passes.pipeline import lower
    x = rand(256, 512)
    a = (x @ x.T).exp()      # 256x256, stored: the next matmul reads it
    b = (a @ x).tanh()       # 256x512; a dies here
    c = (b @ x.T).sin()      # 256x256: takes a's slot
    d = (c @ x).cos()        # the output
    nodes = [d._storage.node]
    from ember.runtime import cache as rc
    key, _, _ = rc.canonical(nodes)
    plan = lower(Graph(key), tile_elems=options.tile_elems)
    stored = [n for g in plan.steps if g.kind == "kernel" for n in g.outputs]
    assert len(plan.slots) >= 2 and len(set(plan.slots.values())) < len(plan.slots)
    assert plan.peak_bytes < sum(n.numel * 4 for n in stored)
    # the program keeps its slots between runs: they count in the cache's bytes
    assert compiled_for(d).nbytes >= sum(plan.slot_bytes)
    agrees(d, rtol=1e-5)


SPECIAL_VALUES = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.5, -1.5, 0.25]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int32"])
def test_max_min_with_a_constant_read_a_filled_tile_and_stay_bit_identical(dtype):
    # NumPy's maximum/minimum are 1.7x slower with a scalar operand than with
    # an array, so a tiled kernel passes constants as filled arrays
    options.tile_elems = 256
    values = np.resize(np.array(SPECIAL_VALUES), 3000)
    if dtype == "int32":
        values = np.arange(-1500, 1500)
    x = em.tensor(values.astype(dtype))
    bounds = [0, 1] if dtype == "int32" else [0.0, -0.0, 0.25, float("nan")]
    for c in bounds:
        ys = [x.clamp(min=c), x.clamp(max=c), x.clamp(min=c, max=2)]
        assert "_F_k" in compiled_for(*ys).source
        em.realize(*ys)
        agrees(*ys)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_row_broadcasts_run_with_row_sized_buffers_and_reductions_stay_exact(dtype):
    # x - rowmax with NumPy's default ufunc buffer copies the broadcast operand
    # chunk by chunk; a row-sized buffer runs row by row. A reduction that casts
    # (a float16 sum) adds in buffer-sized runs, so it must run at the default:
    # these sums follow a row broadcast in the same tile, on two worker threads.
    options.tile_elems, saved_threads = 1 << 14, options.num_threads
    options.num_threads = 2
    try:
        rng = np.random.default_rng(1)
        x = em.tensor(rng.standard_normal((512, 1000)).astype(dtype))
        y = x.softmax(dim=1)
        z = (x - x.amax(1, keepdim=True)).exp().sum(1)
        # (sums, not means: a float16 mean sums in float32, casting nothing)
        w = (x - x.sum(1, keepdim=True)).square().sum(1)
        v = x - x.sum(1, keepdim=True)  # a cast sum before the only broadcast
        for t, casts in ((y, False), (z, dtype == "float16"), (w, dtype == "float16"),
                         (v, dtype == "float16")):
            source = compiled_for(t).source
            # the size the threads set around their tiles (the last argument of _tiles)
            size = int(source.split("_tiles(")[1].split(")\n")[0].rsplit(", ", 1)[1]) or None
            for line in source.splitlines():  # then the lines that change it
                line = line.strip()
                if line.startswith("np.setbufsize("):
                    size = int(line[len("np.setbufsize("):-1])
                elif ".reduce(" in line and casts:  # float16 summed in float32
                    assert size in (None, 8192), line
                elif "np.subtract(l0, s0" in line:
                    assert size == 992, line
        before = np.getbufsize()
        for _ in range(2):  # the second pass finds the workers as the first left them
            y, z, w = em.realize(x.softmax(dim=1), (x - x.amax(1, keepdim=True)).exp().sum(1),
                                 (x - x.sum(1, keepdim=True)).square().sum(1))
            agrees(y, z, w)
        assert np.getbufsize() == before
    finally:
        options.num_threads = saved_threads
