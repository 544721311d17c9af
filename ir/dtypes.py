"""ember's dtypes and PyTorch's type-promotion rules.

A `DType` is an immutable singleton naming an element type. `np` is the NumPy
dtype that holds it on the CPU: every dtype has its own NumPy dtype except
bfloat16, which NumPy lacks; it is held as float32 and rounded to bfloat16
precision on every write (`round_bf16`).

Promotion follows `torch.result_type`: operands fall into three priority tiers
(tensors with dimensions, zero-dimensional tensors, Python scalars). The highest
*category* present (bool < integer < floating) decides the kind of the result;
within that category, the highest tier holding an operand of that category
supplies the dtype(s) that are promoted together. Python scalars are weak: an
`int` never widens an int32 tensor, a `float` meets an integer tensor as the
default float dtype.

This module imports nothing of ember's.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DType", "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16",
    "int8", "uint8", "bool_", "ALL_DTYPES", "promote_types", "result_type",
    "default_float", "from_numpy_dtype", "to_dtype", "round_bf16", "scalar_dtype",
    "cast_scalar",
]


class DType:
    """An element type: `em.float32`, `em.int64`, `em.bool`, ..."""

    __slots__ = ("name", "short", "np", "itemsize", "category", "__weakref__")

    def __init__(self, name: str, short: str, np_dtype, itemsize: int, category: int):
        self.name = name
        self.short = short  # used in the graph's text form: f32, i64, b8, ...
        self.np = np.dtype(np_dtype)
        self.itemsize = itemsize
        self.category = category  # 0 bool, 1 integer, 2 floating

    @property
    def is_floating_point(self) -> bool:
        return self.category == 2

    @property
    def is_integer(self) -> bool:
        return self.category == 1

    @property
    def is_bool(self) -> bool:
        return self.category == 0

    @property
    def is_signed(self) -> bool:
        return self.category == 2 or (self.category == 1 and self.name != "uint8")

    def __repr__(self) -> str:
        return f"ember.{self.name}"

    def __reduce__(self):
        return (to_dtype, (self.name,))


float32 = DType("float32", "f32", np.float32, 4, 2)
float64 = DType("float64", "f64", np.float64, 8, 2)
float16 = DType("float16", "f16", np.float16, 2, 2)
bfloat16 = DType("bfloat16", "bf16", np.float32, 2, 2)
int64 = DType("int64", "i64", np.int64, 8, 1)
int32 = DType("int32", "i32", np.int32, 4, 1)
int16 = DType("int16", "i16", np.int16, 2, 1)
int8 = DType("int8", "i8", np.int8, 1, 1)
uint8 = DType("uint8", "u8", np.uint8, 1, 1)
bool_ = DType("bool", "b8", np.bool_, 1, 0)

ALL_DTYPES = (float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool_)
_BY_NAME = {d.name: d for d in ALL_DTYPES}
_BY_NAME.update({"float": float32, "double": float64, "half": float16, "long": int64,
                 "int": int32, "short": int16, "bool_": bool_})

_default_float = [float32]


def default_float() -> DType:
    """The default floating-point dtype (`em.get_default_dtype()`), float32 unless changed.

    It is the dtype of float tensors built from Python floats and of `em.zeros(...)`
    and the like without a dtype.
    """
    return _default_float[0]


def set_default_dtype(d: DType) -> None:
    """Make `d` (a floating-point ember dtype) the default float dtype (see
    `get_default_dtype`); other dtypes raise TypeError.
    """
    if not isinstance(d, DType) or not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float[0] = d


def to_dtype(x) -> DType:
    """Accept an ember dtype, its name, a NumPy dtype, or the Python types bool/int/float."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        if x in _BY_NAME:
            return _BY_NAME[x]
        names = sorted(d.name for d in ALL_DTYPES)
        raise TypeError(f"unknown dtype {x!r}; expected one of {names}")
    if x is bool:
        return bool_
    if x is int:
        return int64
    if x is float:
        return default_float()
    name = getattr(x, "name", None) if not isinstance(x, type) else None
    if isinstance(name, str) and name.startswith("torch."):  # pragma: no cover - convenience
        return to_dtype(name[6:])
    try:
        return from_numpy_dtype(np.dtype(x))
    except TypeError:
        raise TypeError(f"cannot interpret {x!r} as an ember dtype") from None


_FROM_NP = {np.dtype(np.float32): float32, np.dtype(np.float64): float64,
            np.dtype(np.float16): float16, np.dtype(np.int64): int64,
            np.dtype(np.int32): int32, np.dtype(np.int16): int16, np.dtype(np.int8): int8,
            np.dtype(np.uint8): uint8, np.dtype(np.bool_): bool_}


def from_numpy_dtype(d: np.dtype) -> DType:
    d = np.dtype(d)
    if d in _FROM_NP:
        return _FROM_NP[d]
    raise TypeError(
        f"can't convert NumPy array of type {d}: the only supported types are float64, "
        "float32, float16, int64, int32, int16, int8, uint8 and bool")


def _promote_same_category(a: DType, b: DType) -> DType:
    if a is b:
        return a
    if a.category == 2:
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a.itemsize >= b.itemsize else b
    if a.category == 0:
        return a
    return from_numpy_dtype(np.promote_types(a.np, b.np))


def promote_types(a: DType, b: DType) -> DType:
    """`torch.promote_types`: the smallest dtype to which both can be cast safely."""
    if a.category != b.category:
        return a if a.category > b.category else b
    return _promote_same_category(a, b)


def scalar_dtype(value) -> DType:
    """The dtype a Python scalar takes when it becomes a tensor on its own."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return default_float()
    raise TypeError(f"expected a number, got {type(value).__name__}")


def result_type(dim_tensors, zero_dim_tensors=(), scalars=()) -> DType:
    """PyTorch's `result_type` over three tiers of operands.

    `dim_tensors` and `zero_dim_tensors` are DTypes; `scalars` are Python numbers.
    """
    tiers = [list(dim_tensors), list(zero_dim_tensors),
             [scalar_dtype(s) for s in scalars]]
    top = max((d.category for tier in tiers for d in tier), default=2)
    for i, tier in enumerate(tiers):
        hits = [d for d in tier if d.category == top]
        if hits:
            if i == 2:  # a weak scalar decides: the default dtype of its category
                return {0: bool_, 1: int64, 2: default_float()}[top]
            out = hits[0]
            for d in hits[1:]:
                out = _promote_same_category(out, d)
            return out
    raise AssertionError("unreachable")


def round_bf16(a: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), kept as float32."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    bits = a.view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    out = ((bits + rounding) & np.uint32(0xFFFF0000)).view(np.float32)
    # NOTE: NaN must stay NaN; rounding a NaN payload could carry it into infinity.
    return np.where(np.isnan(a), a, out)


def cast_scalar(value, src: DType, dst: DType):
    """`value` (a constant of dtype `src`) cast to `dst` as a tensor cast computes it.

    NOTE: the value NumPy's cast gives, which the interpreter and the compiled
    kernels give too: NaN and out-of-range floats to integers give the platform's
    value (INT_MIN on x86), where Python's `int()` would raise or wrap.
    """
    with np.errstate(all="ignore"):
        a = np.array(value, dtype=src.np)
        if src is bfloat16:
            a = round_bf16(a).reshape(())
        out = a.astype(dst.np)
    if dst is bfloat16:
        out = round_bf16(out).reshape(())
    return out.item()
