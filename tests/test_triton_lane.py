"""The op matrix, the gradient table and the lazy/eager hypothesis test, on the Triton lane.

Every case of tests/test_ops.py's registry (forward), every case of
tests/test_gradcheck.py's table (forward and backward) and every Op of
tests/test_compiled_ops.py's matrix (each dtype) runs with the Triton back end
(`options.backend = "triton"`: the generated kernels run on CPU torch tensors
through Triton's interpreter, TRITON_INTERPRET=1 being set by conftest.py) and
again on the reference interpreter (eager); the values must agree: integers and
bools exactly, floats within a few ulps of their dtype (reductions may sum in
another order), NaN equal to NaN. Shapes are the registries' own small ones: the
interpreter costs about a millisecond per program instance.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import test_compiled_ops as tco
import test_gradcheck as tg
import test_lazy_eager as tle
import test_ops as to
from helpers import flat_outputs, to_ember
from hypothesis import given, settings
from hypothesis import strategies as st

import ember as em
from ember.ir import build as b
from ember.ir import dtypes as dt
from ember.ir.node import node
from ember.ir.ops import BINARY, COMPARISON, Op
from ember.runtime import cache, compiled
from ember.runtime.config import options
from ember.runtime.interpreter import evaluate

pytest.importorskip("triton")
pytest.importorskip("torch")

# (rtol, atol) by dtype name: the reference interpreter's order of operations is kept
# for elementwise work, not for every reduction
TOL = {"float64": (1e-12, 1e-14), "float32": (2e-5, 1e-6), "float16": (2e-3, 1e-4),
       "bfloat16": (1.6e-2, 1e-3)}


@pytest.fixture
def triton_backend(monkeypatch):
    monkeypatch.setattr(options, "backend", "triton")
    yield


def _array(x) -> np.ndarray:
    if isinstance(x, em.Tensor):
        return np.asarray(x.detach().float() if x.dtype is em.bfloat16 else x.detach())
    return np.asarray(x)


def _agree(got, ref, what: str) -> None:
    if isinstance(ref, em.dtype) or not isinstance(ref, (em.Tensor, np.ndarray)):
        assert got == ref or (got != got and ref != ref), (what, got, ref)
        return
    if isinstance(ref, em.Tensor):
        assert got.dtype is ref.dtype, (what, got.dtype, ref.dtype)
    g, r = _array(got), _array(ref)
    assert g.shape == r.shape, (what, g.shape, r.shape)
    name = ref.dtype.name if isinstance(ref, em.Tensor) else g.dtype.name
    if name not in TOL:
        np.testing.assert_array_equal(g, r, err_msg=what)
        return
    rtol, atol = TOL[name]
    np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), rtol=rtol,
                               atol=atol, equal_nan=True, err_msg=what)


def _run(fn, args):
    """fn(em, *args) with fresh tensors; its outputs realised (values read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = flat_outputs(fn(em, *[to_ember(a) for a in args]))
        return [o.detach().clone() if isinstance(o, em.Tensor) else o for o in out], \
            [_array(o) if isinstance(o, em.Tensor) else None for o in out]


def _lane(fn, args, what: str) -> None:
    """fn on the Triton lane (lazy, back end Triton) equals fn on the interpreter (eager);
    an error must be the same error."""
    try:
        got, _ = _run(fn, args)
    except Exception as e:  # noqa: BLE001 - compared with the eager run's
        with em.eager(), pytest.raises(type(e)):
            _run(fn, args)
        return
    with em.eager():
        ref, _ = _run(fn, args)
    assert len(got) == len(ref), what
    for i, (g, r) in enumerate(zip(got, ref)):
        _agree(g, r, f"{what} output {i}")


# ---------------------------------------------------------------- the op registry

def _one_per_operation_and_dtype() -> list:
    """The registry's first case of each (operation, dtype of its first input)."""
    seen, out = set(), []
    for c in to.CASES:
        key = (c.api, to.dname(c.args[0]) if c.args else "")
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


LANE_CASES = _one_per_operation_and_dtype()
MATMULS = {"@", "matmul", "mm", "bmm", "dot", "mv", "outer"}


@pytest.mark.parametrize("c", LANE_CASES, ids=[c.id for c in LANE_CASES])
def test_op_on_the_triton_lane(triton_backend, c):
    if c.api in MATMULS and any(to.dname(a) == "bfloat16" for a in c.args):
        pytest.xfail("bfloat16 tl.dot is wrong in Triton's interpreter (checked on a GPU)")
    _lane(c.fn, c.args, c.id)


# ---------------------------------------------------------------- forward and backward

def _grads(fn, arrays):
    leaves = [em.tensor(a, dtype=em.float64, requires_grad=True) for a in arrays]
    outs = [o for o in flat_outputs(fn(em, *leaves)) if isinstance(o, em.Tensor)
            and o.dtype.is_floating_point]
    loss = sum((o * (k + 1.5)).sum() for k, o in enumerate(outs))
    loss.backward()
    return [loss.detach(), *[lf.grad if lf.grad is not None else em.zeros(1)
                             for lf in leaves]]


@pytest.mark.parametrize("name", list(tg.CASES))
def test_gradient_on_the_triton_lane(triton_backend, name):
    fn, shapes, domains = tg.CASES[name]
    arrays = [np.asarray(a, np.float64) for a in tg._arrays(shapes, domains)]
    _lane(lambda m, *xs: _grads(fn, xs), arrays, name)


# ---------------------------------------------------------------- every Op, every dtype

def _check_ir(*outs) -> None:
    outs = list(outs)
    ref = evaluate(outs)
    got = compiled.run_compiled(outs)
    for i, (r, g) in enumerate(zip(ref, got)):
        assert r.dtype == g.dtype and r.shape == g.shape, (i, r.dtype, g.dtype)
        name = "bfloat16" if outs[i].dtype is dt.bfloat16 else r.dtype.name
        if name in TOL:
            np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64),
                                       rtol=TOL[name][0], atol=TOL[name][1],
                                       equal_nan=True, err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(g, r, err_msg=f"output {i}")


@pytest.fixture
def ir_lane(triton_backend, tmp_path):
    saved = options.cache_dir
    options.cache_dir = str(tmp_path)
    cache.clear()
    yield
    options.cache_dir = saved
    tco._keep.clear()


@pytest.mark.parametrize("op", tco.UNARY_OPS, ids=lambda o: o.name)
def test_unary_ops_on_the_triton_lane(ir_lane, op):
    outs = []
    for d in tco.FLOATS:
        x = tco.leaf(tco.values(d, (6, 7)), d)
        outs.append(node(op, (node(Op.MUL, (x, b.like(x, 1.25))),)))
    for d in tco.INTS + [dt.bool_]:
        if op in (Op.NEG, Op.ABS, Op.SIGN, Op.ROUND) and not (d.is_bool and op is not Op.ABS):
            outs.append(node(op, (tco.leaf(tco.values(d, (6, 7)), d),)))
    _check_ir(*outs)


@pytest.mark.parametrize("op", sorted(BINARY, key=lambda o: o.value), ids=lambda o: o.name)
def test_binary_ops_on_the_triton_lane(ir_lane, op):
    outs = []
    for d in tco.ALL:
        if not tco._defined(op, d):
            continue
        a, c = tco.values(d, (5, 8), seed=1), tco.values(d, (5, 8), seed=2)
        if op is Op.POW and d.is_integer:
            c = (np.abs(c) % 3).astype(d.np)
        if op in (Op.FLOORDIV, Op.MOD, Op.FMOD) and d.is_integer:
            c = np.where(c == 0, 3, c).astype(d.np)
        x, y = tco.leaf(a, d), tco.leaf(c, d)
        out = node(op, (x, y))
        if op not in COMPARISON and not d.is_bool and op not in tco.BITS:
            out = node(op, (out, y))
        outs.append(out)
    _check_ir(*outs)


@pytest.mark.parametrize("src", tco.ALL, ids=lambda d: d.name)
def test_casts_on_the_triton_lane(ir_lane, src):
    a = tco.values(src, (4, 9))
    if src.is_floating_point:
        a = np.where(np.isfinite(a), a, 1).astype(a.dtype)  # out of range is undefined
    x = tco.leaf(a, src)
    _check_ir(*[node(Op.CAST, (node(Op.MUL, (x, b.like(x, 1))),), None, d, x.shape)
                for d in tco.ALL])


@pytest.mark.parametrize("op", [Op.REDUCE_SUM, Op.REDUCE_PROD, Op.REDUCE_MAX, Op.REDUCE_MIN],
                         ids=lambda o: o.name)
def test_reductions_on_the_triton_lane(ir_lane, op):
    outs = []
    for d in tco.ALL:
        if d.is_bool and op in (Op.REDUCE_SUM, Op.REDUCE_PROD):
            continue
        x = tco.leaf(tco.values(d, (4, 5, 6)), d)
        if d.is_floating_point:
            x = node(Op.MUL, (x, b.like(x, 0.5)))
        outs += [b.reduce(op, x, (2,)), b.reduce(op, x, (0, 2))]
    _check_ir(*outs)


@pytest.mark.parametrize("dtype", [dt.float32, dt.float64, dt.float16, dt.bfloat16, dt.int64],
                         ids=lambda d: d.name)
def test_matmul_on_the_triton_lane(ir_lane, dtype):
    if dtype is dt.bfloat16:
        # NOTE: Triton's interpreter multiplies a bfloat16 tl.dot's raw 16-bit patterns
        pytest.xfail("bfloat16 tl.dot is wrong in Triton's interpreter (checked on a GPU)")
    x = tco.leaf(tco.values(dtype, (2, 5, 7)), dtype)
    y = tco.leaf(tco.values(dtype, (2, 7, 3), 1), dtype)
    m = node(Op.MATMUL, (x, y))
    _check_ir(m, node(Op.ADD, (m, b.like(m, 1))))


def test_where_movement_and_empty_on_the_triton_lane(ir_lane):
    outs = []
    for d in tco.ALL:
        c = tco.leaf(tco.values(dt.bool_, (6, 6)), dt.bool_)
        x, y = tco.leaf(tco.values(d, (6, 6), 1), d), tco.leaf(tco.values(d, (6, 6), 2), d)
        outs.append(node(Op.WHERE, (c, x, b.like(x, 1))))
        outs.append(node(Op.WHERE, (c, y, x)))
    z = tco.leaf(np.zeros((3, 0), np.float32), dt.float32)
    outs += [node(Op.EXP, (z,)), b.reduce(Op.REDUCE_SUM, z, (1,)),
             b.reduce(Op.REDUCE_MAX, z, (0,))]
    s = tco.leaf(np.array([2.5], np.float32), dt.float32, ())
    outs += [node(Op.EXP, (s,)), node(Op.ADD, (s, b.like(s, 1)))]
    _check_ir(*outs)


# ---------------------------------------------------------------- random programs

@settings(max_examples=10, deadline=None)
@given(st.data(), tle.inputs())
def test_random_programs_on_the_triton_lane(data, arrays):
    saved = options.backend
    options.backend = "triton"
    try:
        tle.test_lazy_and_eager_agree.hypothesis.inner_test(data, arrays)
    finally:
        options.backend = saved
