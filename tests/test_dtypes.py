"""dtypes and PyTorch's type promotion.

A literal table of `torch.result_type` outcomes runs everywhere (weak Python scalars,
0-d tensors, int/float/bool mixes, float16/bfloat16); where torch is installed, every
pair of dtypes is also checked against it through real operations, in each of the three
tiers (tensors with dims, 0-d tensors, Python scalars).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import needs_torch, torch

import ember as em

NAMES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
         "uint8", "bool"]
SCALARS = [True, 3, -2, 2.5]


def _tensor(M, name: str, zero_dim: bool = False):
    d = getattr(M, name)
    return M.ones((), dtype=d) if zero_dim else M.ones(2, dtype=d)


# (left, right, result): "name" is a tensor with dims, "0d:name" a 0-d tensor, Python
# values are scalars. Each row is what torch.result_type answers.
PROMOTION = [
    ("int32", 3, "int32"), ("int8", 300, "int8"), ("uint8", -1, "uint8"),
    ("int32", 2.5, "float32"), ("int64", 2.5, "float32"), ("bool", 2, "int64"),
    ("bool", 2.5, "float32"), ("bool", True, "bool"), ("float16", 2.5, "float16"),
    ("bfloat16", 3, "bfloat16"), ("float16", True, "float16"),
    ("int32", "int64", "int64"), ("uint8", "int8", "int16"), ("uint8", "bool", "uint8"),
    ("int16", "uint8", "int16"), ("float16", "bfloat16", "float32"),
    ("float16", "float32", "float32"), ("bfloat16", "float64", "float64"),
    ("float16", "int64", "float16"), ("bfloat16", "int64", "bfloat16"),
    ("bool", "int8", "int8"), ("bool", "float16", "float16"),
    ("int32", "0d:int64", "int32"), ("float16", "0d:float64", "float16"),
    ("int32", "0d:float64", "float64"), ("int8", "0d:float16", "float16"),
    ("bool", "0d:int64", "int64"), ("uint8", "0d:int8", "uint8"),
    ("bfloat16", "0d:float32", "bfloat16"), ("0d:int8", "0d:int16", "int16"),
    ("0d:float16", "0d:bfloat16", "float32"), ("0d:int32", 2.5, "float32"),
    ("0d:float64", 2, "float64"), ("0d:bool", 1, "int64"), ("0d:uint8", "int8", "int8"),
]


def _operand(spec, M=em):
    if isinstance(spec, str):
        zero = spec.startswith("0d:")
        return _tensor(M, spec.removeprefix("0d:"), zero)
    return spec


@pytest.mark.parametrize("left, right, expected", PROMOTION,
                         ids=[f"{a}-{b}" for a, b, _ in PROMOTION])
def test_promotion_table(left, right, expected):
    a, b = _operand(left), _operand(right)
    for out in (a * b, b * a, em.where(em.tensor(True), a, b), a == b):
        want = "bool" if out.dtype is em.bool and expected != "bool" else expected
        assert out.dtype.name == want, (left, right, out.dtype)


@needs_torch
@pytest.mark.parametrize("a, b", list(itertools.product(NAMES, NAMES)))
def test_promote_types_matches_torch(a, b):
    got = em.promote_types(getattr(em, a), getattr(em, b)).name
    assert got == str(torch.promote_types(getattr(torch, a), getattr(torch, b))).split(".")[1]


TIERS = ["dim", "0d", "scalar"]


def _make(M, name, tier):
    if tier == "scalar":
        return {"bool": True, "float32": 2.5, "int64": 3}.get(name)
    return _tensor(M, name, tier == "0d")


@needs_torch
@pytest.mark.parametrize("tier_a, tier_b", [("dim", "dim"), ("dim", "0d"), ("0d", "dim"),
                                            ("dim", "scalar"), ("0d", "0d"),
                                            ("0d", "scalar"), ("scalar", "dim")])
def test_promotion_of_every_pair_across_tiers_matches_torch(tier_a, tier_b):
    names_a = NAMES if tier_a != "scalar" else ["bool", "int64", "float32"]
    names_b = NAMES if tier_b != "scalar" else ["bool", "int64", "float32"]
    for a, b in itertools.product(names_a, names_b):
        ea, eb = _make(em, a, tier_a), _make(em, b, tier_b)
        ta, tb = _make(torch, a, tier_a), _make(torch, b, tier_b)
        add = (lambda x, y: x * y) if "bool" in (a, b) else (lambda x, y: x + y)
        for fn in (lambda x, y: x * y, add, lambda x, y: x / y, lambda x, y: x == y,
                   lambda x, y: x < y):
            got = fn(ea, eb).dtype.name
            want = str(fn(ta, tb).dtype).split(".")[1]
            assert got == want, (a, tier_a, b, tier_b, got, want)


@pytest.mark.parametrize("name", NAMES)
def test_float_functions_of_integers_give_the_default_float(name):
    x = _tensor(em, name)
    expected = name if name in ("float32", "float64", "float16", "bfloat16") else "float32"
    for fn in (em.sqrt, em.exp, em.sigmoid, em.sin, lambda t: t / 2, em.reciprocal):
        assert fn(x).dtype.name == expected
    assert (x == 1).dtype is em.bool and em.isnan(x).dtype is em.bool


@pytest.mark.parametrize("name", NAMES)
def test_reductions_dtypes(name):
    x = _tensor(em, name)
    is_float = name in ("float32", "float64", "float16", "bfloat16")
    assert x.sum().dtype.name == (name if is_float else "int64")
    assert x.prod().dtype.name == (name if is_float else "int64")
    assert x.cumsum(0).dtype.name == (name if is_float else "int64")
    assert x.amax().dtype.name == name and x.argmax().dtype is em.int64
    assert x.all().dtype.name == ("uint8" if name == "uint8" else "bool")
    if is_float:
        assert x.mean().dtype.name == name and x.var().dtype.name == name
        assert x.softmax(0).dtype.name == name


def test_set_default_dtype_changes_inferred_floats():
    assert em.get_default_dtype() is em.float32
    em.set_default_dtype(em.float64)
    try:
        assert em.tensor([1.5]).dtype is em.float64 and em.zeros(2).dtype is em.float64
        assert (em.arange(3) * 1.5).dtype is em.float64 and em.arange(0.5, 2).dtype is em.float64
        assert em.sqrt(em.arange(3)).dtype is em.float64
        assert (em.ones(2, dtype=em.float32) * 2.5).dtype is em.float32
    finally:
        em.set_default_dtype(em.float32)
    assert em.tensor([1.5]).dtype is em.float32


def test_dtype_objects():
    assert em.float is em.float32 and em.double is em.float64 and em.long is em.int64
    assert em.int is em.int32 and em.half is em.float16 and em.short is em.int16
    assert repr(em.float32) == "ember.float32" and em.bool.is_bool
    assert em.bfloat16.is_floating_point and not em.uint8.is_signed and em.int8.is_signed
    assert em.tensor([1], dtype="int16").dtype is em.int16
    assert em.tensor([1], dtype=np.float16).dtype is em.float16
    with pytest.raises(TypeError, match="unknown dtype"):
        em.tensor([1], dtype="float8")


@pytest.mark.parametrize("name", NAMES)
def test_every_dtype_round_trips_through_numpy(name):
    values = [0, 1, 2] if name != "bool" else [True, False, True]
    x = em.tensor(values, dtype=getattr(em, name))
    a = x.numpy()
    assert a.dtype == (np.float32 if name == "bfloat16" else np.dtype(name))
    assert em.tensor(a).dtype.name == ("float32" if name == "bfloat16" else name)
    assert x.tolist() == values


def test_float16_and_bfloat16_results_are_rounded_to_their_precision():
    h = em.tensor([1.0], dtype=em.float16) / 3
    assert h.item() == float(np.float16(1 / 3))
    b = em.tensor([1.0], dtype=em.bfloat16) / 3
    assert b.item() == 0.333984375  # the nearest bfloat16
    assert (em.ones(2, dtype=em.float16) * 1e5).tolist() == [float("inf")] * 2
