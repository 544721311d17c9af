"""Every Op, compiled to NumPy kernels, against the reference interpreter.

Graphs are built directly from IR nodes over input buffers and evaluated twice:
by `runtime.interpreter.evaluate` and by `runtime.compiled.run_compiled`. The
results must be bit-identical (NaN equals NaN, -0.0 differs from 0.0), in every
dtype, both untiled and tiled: the `tiny_tiles` fixture sets 16 elements per
tile, so small arrays exercise the tiled, threaded path too.
"""

from __future__ import annotations

import numpy as np
import pytest

from ember.codegen import numpy_gen
from ember.ir import build as b
from ember.ir import dtypes as dt
from ember.ir.node import node
from ember.ir.ops import BINARY, COMPARISON, Op
from ember.ir.view import View
from ember.runtime import buffers, cache, compiled, options
from ember.runtime.interpreter import IMPL, evaluate

FLOATS = [dt.float32, dt.float64, dt.float16, dt.bfloat16]
INTS = [dt.int64, dt.int32, dt.int16, dt.int8, dt.uint8]
ALL = FLOATS + INTS + [dt.bool_]
_keep: list = []


@pytest.fixture(autouse=True)
def _fresh(tmp_path):
    saved = (options.tile_elems, options.cache_dir, options.num_threads)
    options.cache_dir = str(tmp_path)
    cache.clear()
    yield
    options.tile_elems, options.cache_dir, options.num_threads = saved
    _keep.clear()


@pytest.fixture(params=["untiled", "tiled"])
def tiling(request):
    options.tile_elems = 16 if request.param == "tiled" else 32768
    options.num_threads = 2
    return request.param


def values(dtype: dt.DType, shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dtype.is_bool:
        a = rng.random(n) > 0.5
    elif dtype.is_integer:
        lo = 0 if dtype is dt.uint8 else -9
        a = rng.integers(lo, 10, n).astype(dtype.np)
    else:
        a = rng.uniform(-3, 3, n)
        special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, 2.5, -1.5])
        a[: min(n, 8)] = special[: min(n, 8)]
        a = a.astype(dtype.np)
        if dtype is dt.bfloat16:
            a = dt.round_bf16(a).reshape(a.shape)
    return a.reshape(shape)


def leaf(a: np.ndarray, dtype: dt.DType, shape=None):
    """A node reading array `a` (a BUFFER, reshaped to `shape`)."""
    buf = buffers.Buffer(np.ascontiguousarray(a).reshape(-1))
    _keep.append(buf)
    n = buffers.buffer_node(buf, dtype)
    return b.reshape(n, a.shape if shape is None else shape)


def same(ref: np.ndarray, got: np.ndarray, what="") -> None:
    assert got.dtype == ref.dtype, (what, got.dtype, ref.dtype)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    if ref.dtype.kind == "f":
        both_nan = np.isnan(ref) & np.isnan(got)
        ok = both_nan | ((ref == got) & (np.signbit(ref) == np.signbit(got)))
        assert ok.all(), (what, ref[~ok][:5], got[~ok][:5])
    else:
        assert np.array_equal(ref, got), (what, ref, got)


def check(*outs, rtol: float = 0.0) -> list[np.ndarray]:
    """Compiled equals interpreted: bit for bit, or within `rtol` where stated."""
    outs = list(outs)
    ref = evaluate(outs)
    got = compiled.run_compiled(outs)
    for i, (r, g) in enumerate(zip(ref, got)):
        if rtol:
            assert r.dtype == g.dtype and r.shape == g.shape
            np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), rtol=rtol)
        else:
            same(r, g, f"output {i}")
    return got


def test_every_op_has_a_numpy_rule():
    missing = set(Op) - numpy_gen.covered_ops()
    assert not missing, f"no NumPy codegen rule for {sorted(o.name for o in missing)}"


def test_every_op_has_an_interpreter_rule():
    assert set(Op) == set(IMPL)


UNARY_OPS = [Op.NEG, Op.EXP, Op.LOG, Op.SIN, Op.COS, Op.TAN, Op.TANH, Op.SQRT, Op.ABS,
             Op.SIGN, Op.FLOOR, Op.CEIL, Op.ROUND, Op.TRUNC, Op.LOG1P, Op.EXPM1, Op.EXP2, Op.RECIP,
             Op.ERF, Op.ERFC, Op.ERFINV, Op.ASIN, Op.ACOS, Op.ATAN, Op.SINH, Op.COSH,
             Op.ASINH, Op.ACOSH, Op.ATANH]


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("op", UNARY_OPS, ids=lambda o: o.name)
def test_unary_float(op, dtype, tiling):
    x = leaf(values(dtype, (6, 7)), dtype)
    check(b.reshape(node(op, (node(Op.MUL, (x, b.like(x, 1.25))),)), (42,)))


@pytest.mark.parametrize("dtype", INTS + [dt.bool_], ids=lambda d: d.name)
@pytest.mark.parametrize("op", [Op.NEG, Op.ABS, Op.SIGN, Op.NOT, Op.ROUND], ids=lambda o: o.name)
def test_unary_int(op, dtype, tiling):
    if dtype.is_bool and op in (Op.NEG, Op.SIGN):
        pytest.skip("NumPy has no bool loop (the interpreter raises too)")
    x = leaf(values(dtype, (6, 7)), dtype)
    check(node(op, (x,)))


ARITH = [Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAX, Op.MIN, Op.FLOORDIV, Op.MOD]
BITS = [Op.AND, Op.OR, Op.XOR, Op.SHL, Op.SHR]


@pytest.mark.parametrize("dtype", ALL, ids=lambda d: d.name)
@pytest.mark.parametrize("op", sorted(BINARY, key=lambda o: o.value), ids=lambda o: o.name)
def test_binary(op, dtype, tiling):
    if op in BITS and dtype.is_floating_point:
        pytest.skip("bitwise ops are integer-only")
    if dtype.is_bool and op in (Op.SUB, Op.DIV, Op.POW, Op.FLOORDIV, Op.MOD, Op.FMOD):
        pytest.skip("not defined on bool")
    a = values(dtype, (5, 8), seed=1)
    c = values(dtype, (5, 8), seed=2)
    if op is Op.POW and dtype.is_integer:
        c = np.abs(c) % 3
        c = c.astype(dtype.np)
    if op in (Op.FLOORDIV, Op.MOD, Op.FMOD) and dtype.is_integer:
        c = np.where(c == 0, 3, c).astype(dtype.np)  # a zero divisor raises (tested below)
    x, y = leaf(a, dtype), leaf(c, dtype)
    out = node(op, (x, y))
    if op not in COMPARISON and not dtype.is_bool and op not in BITS:
        out = node(op, (out, y))  # two in a row: a fused chain
    check(out)


@pytest.mark.parametrize("dtype", INTS, ids=lambda d: d.name)
@pytest.mark.parametrize("op", [Op.FLOORDIV, Op.MOD, Op.FMOD], ids=lambda o: o.name)
def test_integer_division_by_zero_raises_in_every_path(op, dtype, tiling):
    # as torch's RuntimeError("ZeroDivisionError"), where NumPy would give 0
    from ember.runtime.interpreter import IntegerDivisionByZero
    a = values(dtype, (5, 8), seed=1)
    c = np.where(values(dtype, (5, 8), seed=2) == 0, 3, values(dtype, (5, 8), seed=2))
    c = c.astype(dtype.np)
    c[4, 7] = 0
    out = node(op, (leaf(a, dtype), leaf(c, dtype)))
    with pytest.raises(IntegerDivisionByZero, match="ZeroDivisionError"):
        evaluate([out])
    with pytest.raises(ZeroDivisionError):
        compiled.run_compiled([out])


def _defined(op: Op, dtype: dt.DType) -> bool:
    """Whether NumPy (and so the interpreter) has a loop for op on dtype."""
    if op not in BINARY and op not in (Op.NEG, Op.ABS, Op.SIGN, Op.ROUND):
        return dtype.is_floating_point
    if dtype.is_bool and op in (Op.NEG, Op.SIGN, Op.SUB, Op.DIV, Op.POW, Op.FLOORDIV, Op.MOD,
                                Op.FMOD):
        return False
    return not (op in BITS and dtype.is_floating_point)


@pytest.mark.parametrize("op,dtype", [
    (op, d) for op in UNARY_OPS + sorted(BINARY, key=lambda o: o.value) for d in ALL
    if _defined(op, d)], ids=lambda v: getattr(v, "name", str(v)))
def test_one_element_kernels_on_scalars(op, dtype):
    """One-element kernels compute on NumPy scalars (and Python operators): every
    special value, in every dtype, as the interpreter computes it on arrays."""
    unary = op not in BINARY
    a, c = values(dtype, (8,), seed=1), values(dtype, (8,), seed=2)
    if op is Op.POW and dtype.is_integer:
        c = (np.abs(c) % 3).astype(dtype.np)
    if op in (Op.FLOORDIV, Op.MOD, Op.FMOD) and dtype.is_integer:  # both divide (0 raises)
        a, c = (np.where(v == 0, 3, v).astype(dtype.np) for v in (a, c))
    outs = []
    for i in range(8):
        x, y = leaf(a[i:i + 1], dtype, ()), leaf(c[i:i + 1], dtype, ())
        if unary:
            outs.append(node(op, (node(Op.NEG, (x,)) if dtype.is_floating_point else x,)))
        else:
            outs.append(node(op, (x, y)))
            if op not in COMPARISON and not dtype.is_bool and op not in BITS:
                outs[-1] = node(op, (outs[-1], x))
    for out in outs:
        check(out)
    if dtype is dt.float32 and op is Op.MUL:
        assert "[()]" in compiled.lookup([outs[0]])[0].source  # the scalar form ran


def test_integer_division_and_overflow_wrap(tiling):
    # (a zero divisor raises: test_integer_division_by_zero_raises_in_every_path)
    a = leaf(np.array([7, -7, 7, -7, 127, -128, 5, 0], np.int8), dt.int8)
    z = leaf(np.array([2, 2, -2, -2, 1, -1, 3, -3], np.int8), dt.int8)
    check(node(Op.FLOORDIV, (a, z)), node(Op.MOD, (a, z)),
          node(Op.ADD, (a, b.like(a, 100))), node(Op.MUL, (a, b.like(a, 3))),
          node(Op.DIV, (b.cast(a, dt.float32), b.cast(z, dt.float32))))


def test_integer_pow_negative_exponent_follows_torch_like_the_interpreter():
    x = leaf(np.array([2, 3, 1, -1, -1, 0], np.int64), dt.int64)
    e = leaf(np.array([1, -1, -3, -1, -2, 2], np.int64), dt.int64)
    out = node(Op.POW, (x, e))
    expected = [2, 0, 1, -1, 1, 0]
    assert evaluate([out])[0].tolist() == expected
    assert compiled.run_compiled([out])[0].tolist() == expected


def test_nan_propagates_through_max_min(tiling):
    a = leaf(np.array([np.nan, 1.0, 2.0, np.nan] * 8, np.float32), dt.float32)
    c = leaf(np.array([0.0, np.nan, 3.0, np.nan] * 8, np.float32), dt.float32)
    check(node(Op.MAX, (a, c)), node(Op.MIN, (a, c)),
          b.reduce(Op.REDUCE_MAX, b.reshape(a, (4, 8)), (1,)),
          b.reduce(Op.REDUCE_MIN, b.reshape(a, (8, 4)), (0,)))


@pytest.mark.parametrize("dst", ALL, ids=lambda d: d.name)
@pytest.mark.parametrize("src", ALL, ids=lambda d: d.name)
def test_cast(src, dst, tiling):
    a = values(src, (4, 9))
    if src.is_floating_point and not dst.is_floating_point:
        a = np.where(np.isfinite(a), a, 1).astype(a.dtype)  # out of range is undefined
    x = leaf(a, src)
    check(node(Op.CAST, (node(Op.MUL, (x, b.like(x, 1))),), None, dst, x.shape))


@pytest.mark.parametrize("dtype", ALL, ids=lambda d: d.name)
def test_where(dtype, tiling):
    c = leaf(values(dt.bool_, (6, 6)), dt.bool_)
    x = leaf(values(dtype, (6, 6), 1), dtype)
    y = leaf(values(dtype, (6, 6), 2), dtype)
    row = leaf(values(dtype, (6,), 3), dtype, (1, 6))
    check(node(Op.WHERE, (c, x, y)), node(Op.WHERE, (c, b.like(x, 1), y)),
          node(Op.WHERE, (c, y, b.expand_to(row, (6, 6)))),  # a broadcast operand
          node(Op.MUL, (node(Op.WHERE, (c, b.like(x, -0.0), x)), b.like(x, 1))))


def test_select_copies_bits():
    """The branch-free select keeps NaN payloads, -0.0 and infinities bit for bit."""
    from ember.runtime.compiled import _select
    rng = np.random.default_rng(0)
    for dtype in (np.float16, np.float32, np.float64):
        u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]
        a = rng.integers(0, np.iinfo(u).max, 500, dtype=u).view(dtype)  # every bit pattern
        bb = np.array([np.nan, -0.0, np.inf, -np.inf, 1.5] * 100, dtype=dtype)
        c = rng.random(500) < 0.5
        got = _select(c, a, bb, np.empty(500, dtype))
        assert np.array_equal(got.view(u), np.where(c, a.view(u), bb.view(u)))
        got = _select(c, dtype(-0.0), bb, np.empty(500, dtype))  # a scalar operand
        assert np.array_equal(got.view(u), np.where(c, np.array(-0.0, dtype).view(u),
                                                    bb.view(u)))


@pytest.mark.parametrize("dtype", ALL, ids=lambda d: d.name)
@pytest.mark.parametrize("op", [Op.REDUCE_SUM, Op.REDUCE_PROD, Op.REDUCE_MAX, Op.REDUCE_MIN],
                         ids=lambda o: o.name)
@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 2), (0, 1, 2)], ids=str)
def test_reduce(op, dtype, axes, tiling):
    if dtype.is_bool and op in (Op.REDUCE_SUM, Op.REDUCE_PROD):
        pytest.skip("the tracer casts bools before summing")
    a = values(dtype, (4, 5, 6))
    x = leaf(a, dtype)
    if dtype.is_floating_point:
        x = node(Op.MUL, (x, b.like(x, 0.5)))  # a fused prologue
    check(b.reduce(op, x, axes))


def test_reduce_max_of_empty_raises_like_the_interpreter():
    x = leaf(np.zeros((3, 0), np.float32), dt.float32)
    out = node(Op.REDUCE_MAX, (x,), (1,))
    with pytest.raises(RuntimeError, match="no identity"):
        evaluate([out])
    with pytest.raises(RuntimeError, match="no identity"):
        compiled.run_compiled([out])
    check(node(Op.REDUCE_MAX, (x,), (0,)))  # over a non-empty axis: an empty result


@pytest.mark.parametrize("dtype", [dt.float32, dt.float64, dt.float16, dt.bfloat16, dt.int64],
                         ids=lambda d: d.name)
def test_matmul(dtype, tiling):
    x = leaf(values(dtype, (2, 5, 7)), dtype)
    y = leaf(values(dtype, (2, 7, 3), 1), dtype)
    m = node(Op.MATMUL, (x, y))
    check(m, node(Op.ADD, (m, b.like(m, 1))))


def test_movement_ops(tiling):
    a = values(dt.float32, (4, 6, 5))
    x = leaf(a, dt.float32)
    y = node(Op.EXP, (x,))  # computed, so the movements act on a kernel's output
    outs = [
        b.reshape(y, (24, 5)),
        node(Op.PERMUTE, (y,), (2, 0, 1)),
        node(Op.EXPAND, (b.reshape(y, (4, 1, 6, 5)),), (4, 3, 6, 5)),
        node(Op.SLICE, (y,), ((1, 4, 2), (0, 6, 3), (4, 0, 1))),
        node(Op.SLICE, (x,), ((0, 4, 1), (1, 5, 1), (0, 5, 2))),
        node(Op.FLIP, (y,), (0, 2)),
        node(Op.FLIP, (x,), (1,)),
        node(Op.AS_STRIDED, (b.flat(y),), View((3, 4), (2, 7), 5)),
        node(Op.AS_STRIDED, (b.flat(x),), View((3, 4), (-2, 1), 30)),
        node(Op.ADD, (node(Op.PERMUTE, (x,), (0, 2, 1)), node(Op.PERMUTE, (y,), (0, 2, 1)))),
    ]
    check(*outs)


@pytest.mark.parametrize("dtype", [dt.float32, dt.bfloat16, dt.int16], ids=lambda d: d.name)
def test_write(dtype, tiling):
    dest = leaf(values(dtype, (20,)), dtype)
    src = node(Op.NEG, (leaf(values(dtype, (2, 3), 1), dtype),))
    check(node(Op.WRITE, (dest, src), View((2, 3), (6, 2), 1)),
          node(Op.WRITE, (dest, src), View((2, 3), (-6, 1), 15)))


def test_extern_ops(tiling):
    x = leaf(values(dt.float32, (4, 6)), dt.float32)
    idx = leaf(np.array([[0, 3], [5, 1]], np.int64), dt.int64)
    src = leaf(values(dt.float32, (4, 2, 2), 1), dt.float32)
    dest = leaf(values(dt.float32, (4, 6), 2), dt.float32)
    check(node(Op.TAKE, (x, idx), 1),
          node(Op.SCATTER, (dest, leaf(np.array([0, 3], np.int64), dt.int64),
                            leaf(values(dt.float32, (4, 2), 3), dt.float32)), 1),
          node(Op.SCATTER_ADD, (dest, leaf(np.array([1, 1], np.int64), dt.int64),
                                leaf(values(dt.float32, (4, 2), 4), dt.float32)), 1),
          node(Op.ARGSORT, (x,), (1, True)),
          node(Op.CUMSUM, (node(Op.EXP, (x,)),), 0),
          node(Op.ARANGE, (), (2, 3), dt.int64, (5,)),
          node(Op.ARANGE, (), (0.5, 0.25), dt.float32, (7,)))
    assert src is not None


def test_take_out_of_bounds_raises_like_the_interpreter():
    x = leaf(values(dt.float32, (4,)), dt.float32)
    idx = leaf(np.array([7], np.int64), dt.int64)
    with pytest.raises(IndexError, match="out of bounds"):
        compiled.run_compiled([node(Op.TAKE, (x, idx), 0)])


@pytest.mark.parametrize("dtype", [dt.float32, dt.float64, dt.float16, dt.bfloat16],
                         ids=lambda d: d.name)
def test_rand_matches_and_seeds_are_parameters(dtype):
    r1 = node(Op.RAND, (), (7, 1, 0), dtype, (3, 5))
    r2 = node(Op.RAND, (), (8, 2, 0), dtype, (3, 5))
    check(node(Op.ADD, (r1, r1)))
    check(node(Op.ADD, (r2, r2)))  # another seed and sequence number: the same program
    assert (cache.stats().misses, cache.stats().hits, cache.stats().compiles) == (1, 1, 1)


def test_constants_outputs_and_inputs_as_outputs(tiling):
    x = leaf(values(dt.float32, (3,)), dt.float32)
    got = check(b.full(2.5, dt.float32, (4,)), x, b.full(1, dt.bfloat16, (2, 2)),
                node(Op.MUL, (x, b.like(x, 0.1))))
    assert got[0].flags.writeable


def test_outputs_are_fresh_arrays_each_run():
    x = leaf(values(dt.float32, (8,)), dt.float32)
    out = node(Op.EXP, (x,))
    a = compiled.run_compiled([out])[0]
    c = compiled.run_compiled([out])[0]
    assert a is not c and not np.shares_memory(a, c)
    assert a.base is None  # a storage can own it without a copy


def test_realized_nodes_are_inputs_not_recomputed():
    x = leaf(values(dt.float32, (4,)), dt.float32)
    y = node(Op.EXP, (x,))
    fake = np.arange(4, dtype=np.float32)
    buffers.realized[y] = fake
    try:
        out = node(Op.ADD, (y, b.like(y, 1)))
        got = check(out)
        assert np.array_equal(got[0], fake + 1)
    finally:
        del buffers.realized[y]


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
def test_power_of_two_is_bit_identical(dtype, tiling):
    a = values(dtype, (7, 9))
    ties = (1 + np.arange(63) * 2.0 ** -12).astype(np.float64)  # x*x lands on ties
    x = leaf(np.concatenate([a.reshape(-1), ties.astype(a.dtype)]), dtype)
    check(node(Op.POW, (x, b.like(x, 2.0))))
