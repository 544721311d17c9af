"""Tensor printing: `format_tensor` must print what PyTorch's `repr` prints.

Literal cases run everywhere; the differential cases compare against
`repr(torch_tensor)` (with `torch.` spelled `ember.`) and are skipped without torch.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ember.ir import dtypes as D
from ember.tracer.printing import (
    format_tensor,
    get_printoptions,
    printoptions,
    set_printoptions,
)

torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

FLOATS = [D.float32, D.float64, D.float16, D.bfloat16]
INTS = [D.int64, D.int32, D.int16, D.int8, D.uint8]
ALL = FLOATS + INTS + [D.bool_]
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------- helpers


def to_torch(values: np.ndarray, dtype: D.DType):
    """The torch tensor holding `values` as `dtype` (values already in dtype.np)."""
    if dtype is D.bfloat16:
        t = torch.from_numpy(np.array(values, dtype=np.float32)).to(torch.bfloat16)
        # NOTE: the values must already be bfloat16 numbers, or the comparison is unfair.
        assert np.array_equal(t.float().numpy(), values, equal_nan=True)
        return t
    return torch.from_numpy(np.array(values, dtype=dtype.np))


def torch_repr(t) -> str:
    return repr(t).replace("torch.", "ember.")


@contextlib.contextmanager
def both_printoptions(**opts):
    """Apply the same print options to ember and torch, restoring both after."""
    old = get_printoptions()
    old_torch = torch._tensor_str.get_printoptions()
    set_printoptions(**opts)
    torch.set_printoptions(**opts)
    try:
        yield
    finally:
        set_printoptions(**old)
        torch.set_printoptions(**old_torch)


def assert_same(values: np.ndarray, dtype: D.DType) -> None:
    expected = torch_repr(to_torch(values, dtype))
    assert format_tensor(values, dtype) == expected


# --------------------------------------------------------------- strategies


@st.composite
def shapes(draw, max_numel: int = 6000) -> tuple[int, ...]:
    ndim = draw(st.integers(0, 4))
    side = st.integers(0, 7) | st.integers(8, 40) | st.integers(900, 1300)
    shape = [draw(side) for _ in range(ndim)]
    while math.prod(shape) > max_numel:  # keep big cases cheap; many still summarise
        shape[shape.index(max(shape))] //= 3
    return tuple(shape)


@st.composite
def values_for(draw, dtype: D.DType, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = math.prod(shape)
    if dtype is D.bool_:
        return rng.random(n).reshape(shape) < draw(st.floats(0, 1))
    if dtype.category == 1:
        info = np.iinfo(dtype.np)
        lo, hi = draw(st.sampled_from([(-10, 10), (0, 9), (info.min, info.max),
                                       (-1000, 100000)]))
        lo, hi = max(lo, info.min), min(hi, info.max)
        out = rng.integers(lo, hi, n, dtype=dtype.np, endpoint=True)
        if n and draw(st.booleans()):
            out[rng.integers(0, n)] = draw(st.sampled_from([info.min, info.max]))
        return out.reshape(shape)
    style = draw(st.sampled_from(["int", "unit", "log", "log"]))
    if style == "int":
        out = rng.integers(-10 ** draw(st.integers(0, 12)), 10 ** 12, n).astype(np.float64)
    elif style == "unit":
        out = rng.uniform(-1, 1, n)
    else:
        center, spread = draw(st.integers(-45, 45)), draw(st.floats(0, 12))
        out = 10.0 ** rng.uniform(center - spread, center + spread, n)
        out *= rng.choice([-1.0, 1.0], n)
    specials = draw(st.lists(st.sampled_from(
        [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e10, 9.99995, 0.99995, 1e-4]), max_size=4))
    for s in specials:
        if n:
            out[rng.integers(0, n)] = s
    with np.errstate(all="ignore"):
        out = out.reshape(shape).astype(dtype.np)
    return D.round_bf16(out).reshape(shape) if dtype is D.bfloat16 else out


@st.composite
def cases(draw, dtypes=ALL, max_numel: int = 6000):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(shapes(max_numel))
    return draw(values_for(dtype, shape)), dtype


print_options = st.fixed_dictionaries({}, optional={
    "precision": st.integers(0, 8),
    "threshold": st.integers(0, 60),
    "edgeitems": st.integers(0, 4),
    "linewidth": st.integers(10, 140),
    "profile": st.sampled_from(["default", "short", "full"]),
    "sci_mode": st.sampled_from([None, True, False]),
})


# ------------------------------------------------------ literal (no torch)


@pytest.mark.parametrize("values, dtype, expected", [
    (np.array(3.5), D.float32, "tensor(3.5000)"),
    (np.array(7), D.int64, "tensor(7)"),
    (np.array([1.0, 2.0]), D.float32, "tensor([1., 2.])"),
    (np.array([1, 2]), D.int32, "tensor([1, 2], dtype=ember.int32)"),
    (np.array([True, False]), D.bool_, "tensor([ True, False])"),
    (np.array([1e10, 1.0, np.nan]), D.float64,
     "tensor([1.0000e+10, 1.0000e+00,        nan], dtype=ember.float64)"),
    (np.array([-0.0, 1.0, -np.inf]), D.float32, "tensor([-0., 1., -inf])"),
    (np.array([0.5, np.nan]), D.float16, "tensor([0.5000,    nan], dtype=ember.float16)"),
    (np.array([1.0, 3.0]), D.bfloat16, "tensor([1., 3.], dtype=ember.bfloat16)"),
    (np.array([1.00001]), D.bfloat16, "tensor([1.], dtype=ember.bfloat16)"),  # rounded
    ([[1, 2], [3, 4]], D.uint8, "tensor([[1, 2],\n        [3, 4]], dtype=ember.uint8)"),
    (np.zeros(0), D.float32, "tensor([])"),
    (np.zeros(0), D.int64, "tensor([], dtype=ember.int64)"),
    (np.zeros((0, 3)), D.float32, "tensor([], size=(0, 3))"),
    (np.zeros((2, 0)), D.bool_, "tensor([], size=(2, 0), dtype=ember.bool)"),
    (np.arange(6.0).reshape(2, 3), D.float32, "tensor([[0., 1., 2.],\n        [3., 4., 5.]])"),
    (np.arange(2000), D.int64, "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])"),
])
def test_literal(values, dtype, expected):
    assert format_tensor(values, dtype) == expected


def test_wraps_rows_at_linewidth():
    assert format_tensor(np.arange(12.0) + 0.5, D.float32) == (
        "tensor([ 0.5000,  1.5000,  2.5000,  3.5000,  4.5000,  5.5000,  6.5000,  7.5000,\n"
        "         8.5000,  9.5000, 10.5000, 11.5000])")


@pytest.mark.parametrize("kwargs, expected", [
    ({"requires_grad": True}, "tensor([1., 2.], requires_grad=True)"),
    ({"grad_fn_name": "MulBackward0"}, "tensor([1., 2.], grad_fn=<MulBackward0>)"),
    ({"grad_fn_name": "MulBackward0", "requires_grad": True},
     "tensor([1., 2.], grad_fn=<MulBackward0>)"),
    ({"device": "cuda"}, "tensor([1., 2.], device='cuda:0')"),
    ({"device": "cuda:1", "requires_grad": True},
     "tensor([1., 2.], device='cuda:1', requires_grad=True)"),
    ({"device": "cpu"}, "tensor([1., 2.])"),
])
def test_suffixes(kwargs, expected):
    assert format_tensor(np.array([1.0, 2.0]), D.float32, **kwargs) == expected


def test_suffixes_order_and_wrap_with_device():
    row = np.array([1.0, 2.5, 3, 4, 5, 6, 7, 8, 9])
    assert format_tensor(row, D.float64, device="cuda:0", requires_grad=True) == (
        "tensor([1.0000, 2.5000, 3.0000, 4.0000, 5.0000, 6.0000, 7.0000, 8.0000, 9.0000],\n"
        "       device='cuda:0', dtype=ember.float64, requires_grad=True)")
    assert format_tensor(np.zeros((0, 3)), D.int64, device="cuda:1") == (
        "tensor([], device='cuda:1', size=(0, 3), dtype=ember.int64)")


def test_printoptions_roundtrip():
    before = get_printoptions()
    assert before == {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80,
                      "sci_mode": None}
    with printoptions(precision=2, sci_mode=True):
        assert format_tensor(np.array([1.0]), D.float32) == "tensor([1.00e+00])"
    assert get_printoptions() == before
    try:
        set_printoptions(profile="short")
        assert get_printoptions()["edgeitems"] == 2
        assert format_tensor(np.array([1.2345]), D.float32) == "tensor([1.23])"
        set_printoptions(profile="full")
        assert "..." not in format_tensor(np.arange(5000), D.int64)
    finally:
        set_printoptions(profile="default")
    assert get_printoptions() == before


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="unknown print profile 'long'.*'full'"):
        set_printoptions(profile="long")


# ------------------------------------------------- differential (torch)


@needs_torch
@pytest.mark.parametrize("values, dtype", [
    (np.array(-0.0), D.float32),
    (np.array(np.nan), D.float64),
    (np.array(True), D.bool_),
    (np.array(65504.0), D.float16),
    (np.array([1e-5, 1.0]), D.float32),
    (np.array([1e8, 1.5]), D.float32),
    (np.array([1e9]), D.float32),
    (np.array([0.0, -0.0, np.nan, np.inf]), D.float32),
    (np.array([123456789.0, -3.0]), D.float64),
    (np.array([9.99995, 1.0]), D.float64),
    (np.arange(1001.0), D.float32),
    (np.arange(24).reshape(2, 3, 4), D.int8),
    (np.arange(3000).reshape(3, 1000) % 7 == 0, D.bool_),
    (np.full((7, 7, 7), 0.1), D.float64),
    (np.zeros((2, 0, 4)), D.float64),
    (np.zeros((0,)), D.uint8),
    (np.array([-128, 127]), D.int8),
    (np.array([-2**63, 2**63 - 1]), D.int64),
])
def test_matches_torch_cases(values, dtype):
    values = values.astype(dtype.np)
    if dtype is D.bfloat16:
        values = D.round_bf16(values).reshape(values.shape)
    assert_same(values, dtype)


@needs_torch
@SETTINGS
@given(cases())
def test_matches_torch_random(case):
    assert_same(*case)


@needs_torch
@SETTINGS
@given(st.sampled_from([D.float16, D.float32, D.float64]).flatmap(
    lambda dt: st.tuples(hnp.arrays(dt.np, hnp.array_shapes(min_dims=0, max_dims=3,
                                                            min_side=0, max_side=5)),
                         st.just(dt))))
def test_matches_torch_any_float_values(case):
    assert_same(*case)


@needs_torch
@SETTINGS
@given(cases(dtypes=FLOATS, max_numel=300), st.booleans())
def test_matches_torch_autograd_suffixes(case, as_result):
    values, dtype = case
    t = to_torch(values, dtype).requires_grad_()
    grad_fn_name = None
    if as_result:
        t = t * 1
        grad_fn_name = "MulBackward0"
    expected = torch_repr(t)
    assert format_tensor(values, dtype, requires_grad=True,
                         grad_fn_name=grad_fn_name) == expected


@needs_torch
@SETTINGS
@given(cases(max_numel=3000), print_options)
def test_matches_torch_with_printoptions(case, opts):
    with both_printoptions(**opts):
        assert get_printoptions() == torch._tensor_str.get_printoptions()
        assert_same(*case)
