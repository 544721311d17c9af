"""Every operation of API.md's "Operations" section against NumPy and torch.

One registry of cases (`CASES`, minitorch-style) feeds one parametrized test: each
case names the API.md operation it covers, a function `fn(M, *inputs)` written once
in PyTorch's words (M is `ember` or `torch`), its inputs, and a NumPy reference.
`tests/helpers.check` compares values, dtypes, shapes, and strides where asked.
`test_every_api_operation_has_a_case` fails when an operation has no case.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from helpers import Arg, check, needs_torch, torch

import ember as em

FLOATS = ["float32", "float64", "float16", "bfloat16"]
INTS = ["int64", "int32", "int16", "int8", "uint8"]
ALL = FLOATS + INTS + ["bool"]


def R(*shape, dtype: str = "float32", lo: float = -3, hi: float = 3, seed: int = 0):
    """A reproducible random input of `shape` and `dtype` with values in [lo, hi)."""
    rng = np.random.default_rng(seed + 7919 * len(shape) + sum(shape))
    if dtype == "bool":
        return np.asarray(rng.random(shape) > 0.5)
    if dtype in INTS:
        lo = max(lo, 0) if dtype == "uint8" else lo
        return np.asarray(rng.integers(math.floor(lo), math.ceil(hi), shape)).astype(dtype)
    a = np.asarray(rng.uniform(lo, hi, shape))
    if dtype == "bfloat16":
        return Arg(np.asarray(em.tensor(a, dtype=em.bfloat16).float()), "bfloat16")
    return a.astype(dtype)


def special(dtype: str = "float32"):
    """Edge values: NaN, infinities, signed zeros, halves (rounding), small and large."""
    a = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, 1.5, 2.5, -2.5, -0.7, 1e-3, 10.0])
    if dtype == "bfloat16":
        return Arg(a.astype(np.float32), "bfloat16")
    return a.astype(dtype)


@dataclass
class Case:
    api: str
    fn: Callable
    args: tuple
    np_fn: Callable | None
    kw: dict = field(default_factory=dict)
    id: str = ""


CASES: list[Case] = []


def case(api: str, fn, *args, np_fn=None, id: str = "", **kw) -> None:
    """Register one comparison: `fn(M, *args)` on ember and torch, `np_fn(*args)` on NumPy."""
    CASES.append(Case(api, fn, args, np_fn, kw, f"{api}-{id or len(CASES)}"))


def dname(a) -> str:
    return a.dtype if isinstance(a, Arg) else ("scalar" if not isinstance(a, np.ndarray)
                                               else a.dtype.name)


# ---------------------------------------------------------------- unary elementwise

def _sigmoid(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


def _wide(f):
    """NumPy's float function of integers in float64 (NumPy would pick float16 for int8)."""
    return lambda x: f(x.astype(np.float64) if x.dtype.kind in "biu" else x)


# name: (NumPy reference, input range, dtypes torch accepts besides the floats)
UNARY = {
    "neg": (np.negative, (-3, 3), INTS),
    "abs": (np.abs, (-3, 3), INTS),
    "square": (lambda x: np.square(x.astype(np.int64) if x.dtype == bool else x), (-3, 3),
               INTS + ["bool"]),
    "sqrt": (_wide(np.sqrt), (0, 4), INTS + ["bool"]),
    "rsqrt": (lambda x: 1 / np.sqrt(x.astype(np.float64)), (0.1, 4), ["int64", "bool"]),
    "exp": (_wide(np.exp), (-3, 3), INTS + ["bool"]),
    "log": (_wide(np.log), (0.01, 5), ["int64", "uint8", "bool"]),
    "log1p": (_wide(np.log1p), (-0.9, 5), ["int32"]),
    "expm1": (_wide(np.expm1), (-3, 3), ["int16"]),
    "sin": (_wide(np.sin), (-4, 4), ["int64"]),
    "cos": (_wide(np.cos), (-4, 4), ["int8"]),
    "tan": (_wide(np.tan), (-1.4, 1.4), ["int32"]),
    "tanh": (_wide(np.tanh), (-3, 3), ["int64", "bool"]),
    "sigmoid": (_sigmoid, (-6, 6), ["int64", "bool"]),
    "relu": (lambda x: np.maximum(x, 0), (-3, 3), INTS),
    "sign": (lambda x: x if x.dtype == bool else np.sign(x), (-3, 3), INTS + ["bool"]),
    "floor": (np.floor, (-3, 3), INTS),
    "ceil": (np.ceil, (-3, 3), INTS),
    "round": (np.round, (-3, 3), INTS),
    "reciprocal": (lambda x: 1 / x.astype(np.float64), (0.2, 3), ["int64"]),
    "logical_not": (np.logical_not, (-2, 2), INTS + ["bool"]),
    "isnan": (np.isnan, (-3, 3), INTS + ["bool"]),
    "isfinite": (np.isfinite, (-3, 3), INTS + ["bool"]),
    "nan_to_num": (np.nan_to_num, (-3, 3), INTS + ["bool"]),
    "erf": (_wide(np.frompyfunc(math.erf, 1, 1)), (-3, 3), ["int64", "bool"]),
    "erfc": (_wide(np.frompyfunc(math.erfc, 1, 1)), (-3, 5), ["int32"]),
    "erfinv": (None, (-0.99, 0.99), ["int64", "bool"]),
    "asin": (_wide(np.arcsin), (-0.99, 0.99), ["int64", "bool"]),
    "acos": (_wide(np.arccos), (-0.99, 0.99), ["int32"]),
    "atan": (_wide(np.arctan), (-4, 4), ["int64"]),
    "sinh": (_wide(np.sinh), (-3, 3), ["int16", "bool"]),
    "cosh": (_wide(np.cosh), (-3, 3), ["int64"]),
    "asinh": (_wide(np.arcsinh), (-4, 4), ["int64"]),
    "acosh": (_wide(np.arccosh), (1, 5), ["int64"]),
    "atanh": (_wide(np.arctanh), (-0.95, 0.95), ["int8"]),
}


def _unary(name):
    return lambda M, x: getattr(M, name)(x)


def _unary_method(name):
    return lambda M, x: getattr(x, name)()


for _name, (_ref, (_lo, _hi), _extra) in UNARY.items():
    for _d in FLOATS + _extra:
        case(_name, _unary(_name), R(3, 4, dtype=_d, lo=_lo, hi=_hi), np_fn=_ref, id=_d)
    case(_name, _unary_method(_name), R(2, 3, dtype="float64", lo=_lo, hi=_hi),
         np_fn=_ref, id="method")
    case(_name, _unary(_name), np.array(_lo / 2 + _hi / 2, np.float32), np_fn=_ref, id="0d")
    case(_name, _unary(_name), np.zeros((0, 3), np.float32), np_fn=_ref, id="empty")
    if _name != "nan_to_num":  # NumPy's defaults are float32's extremes, not float16's
        for _d in ("float32", "float64", "float16", "bfloat16"):
            case(_name, _unary(_name), special(_d),
                 np_fn=None if _name == "sign" else _ref, id=f"special-{_d}")
case("nan_to_num", lambda M, x: M.nan_to_num(x, nan=1.5, posinf=7.0, neginf=-7.0),
     special("float32"), np_fn=lambda x: np.nan_to_num(x, nan=1.5, posinf=7.0, neginf=-7.0),
     id="values")
case("nan_to_num", lambda M, x: M.nan_to_num(x), special("float32"), np_fn=np.nan_to_num,
     id="defaults")
case("nan_to_num", lambda M, x: M.nan_to_num(x), special("float64"), np_fn=np.nan_to_num,
     id="defaults64")
case("sign", lambda M, x: M.sign(x), special("float32"),
     np_fn=lambda x: np.where(np.isnan(x), 0, np.sign(x)), id="nan-is-zero")
case("round", lambda M, x: M.round(x, decimals=2), R(3, 4, dtype="float64"),
     np_fn=lambda x: np.round(x, 2), id="decimals")
case("round", lambda M, x: M.round(x, decimals=-1), R(3, 4, hi=60, dtype="float32"),
     np_fn=lambda x: np.round(x, -1), id="decimals-neg")
case("neg", lambda M, x: -x, R(3, 4), np_fn=np.negative, id="operator")
case("abs", lambda M, x: abs(x), R(3, 4, dtype="int32"), np_fn=np.abs, id="operator")
case("neg", lambda M, x: -x, R(4, dtype="uint8", hi=200), np_fn=np.negative, id="uint8-wraps")
case("abs", lambda M, x: M.abs(x), np.array([-128, -1, 5], np.int8), np_fn=np.abs,
     id="int8-min")

# ---------------------------------------------------------------- binary elementwise

_PY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
       "div": operator.truediv, "pow": operator.pow, "eq": operator.eq, "ne": operator.ne,
       "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}
BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "multiply": np.multiply,
    "div": lambda a, b: np.true_divide(a, b), "pow": np.power, "maximum": np.maximum,
    "minimum": np.minimum, "eq": np.equal, "ne": np.not_equal, "lt": np.less,
    "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or,
}
# (left, right) dtypes: every dtype with itself, and mixes across kinds and widths
PAIRS = [(d, d) for d in ALL] + [
    ("float32", "int64"), ("int32", "int64"), ("uint8", "int8"), ("bool", "int64"),
    ("bool", "float32"), ("float16", "bfloat16"), ("float16", "float32"),
    ("bfloat16", "int64"), ("float64", "float16"), ("int8", "float16"), ("int16", "uint8"),
    ("int64", "float64"), ("uint8", "bool"),
]
SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((3, 1), ())]


def _skip(name: str, a: str, b: str) -> bool:
    """Combinations torch refuses (tested in test_errors) or leaves undefined."""
    return (name == "sub" and "bool" in (a, b)) or (name == "pow" and a == b == "bool")


def _binary(name):
    return lambda M, x, y: getattr(M, name)(x, y)


for _name, _ref in BINARY.items():
    for _a, _b in PAIRS:
        if _skip(_name, _a, _b):
            continue
        _lo = 0 if _name == "pow" and _b in INTS else -3
        case(_name, _binary(_name), R(3, 4, dtype=_a, seed=1), R(4, dtype=_b, seed=2, lo=_lo),
             np_fn=_ref, id=f"{_a}-{_b}")
    for _sa, _sb in SHAPES:
        _lo = 0.1 if _name == "pow" else -3
        case(_name, _binary(_name), R(*_sa, seed=3), R(*_sb, seed=4, lo=_lo), np_fn=_ref,
             id=f"{_sa}-{_sb}")
    if _name in _PY:
        _op = _PY[_name]
        for _d in ("float32", "int64", "int8", "uint8", "bool", "float16", "bfloat16"):
            for _s in (2, 2.5, True, -3):
                if _skip(_name, _d, "bool" if _s is True else "int") or (
                        _name == "pow" and (_s == -3 or _d == "bool")):
                    continue
                if _d == "uint8" and _s == -3:
                    continue
                case(_name, lambda M, x, s=_s, op=_op: op(x, s), R(3, 4, dtype=_d, seed=5),
                     np_fn=lambda x, s=_s, op=_op: op(x, s), id=f"{_d}-scalar-{_s!r}")
                if _name == "pow" and _d in INTS:
                    continue  # 2 ** int_tensor with negative exponents
                case(_name, lambda M, x, s=_s, op=_op: op(s, x),
                     R(3, 4, dtype=_d, seed=6, lo=0.5 if _name == "div" else -3),
                     np_fn=lambda x, s=_s, op=_op: op(s, x), id=f"scalar-{_s!r}-{_d}")
    case(_name, lambda M, x, y, n=_name: getattr(x, n)(y), R(2, 3), R(2, 3, seed=9),
         np_fn=_ref, id="method")

# 0-dim tensors take part in promotion only by category (tested in detail in test_dtypes)
for _a, _b in [("float64", "float32"), ("int64", "float16"), ("float32", "int32"),
               ("int16", "int8"), ("float64", "int64"), ("bool", "uint8"), ("int8", "bool")]:
    case("add", lambda M, x, y: x + y, R(dtype=_a, seed=1), R(3, dtype=_b, seed=2),
         np_fn=np.add, id=f"0d-{_a}+{_b}")
case("mul", lambda M, x, y: x * y, R(dtype="int16"), R(dtype="int8"), np_fn=np.multiply,
     id="0d-0d")
case("div", lambda M, x, y: M.div(x, y, rounding_mode="trunc"), R(3, 4, seed=1),
     R(4, seed=2, lo=0.5), np_fn=lambda a, b: np.trunc(a / b), id="trunc")
case("div", lambda M, x, y: M.div(x, y, rounding_mode="floor"),
     R(3, 4, dtype="int64", lo=-9, hi=9), np.array([2, -3, 4, -1]),
     np_fn=np.floor_divide, id="floor-int")
case("div", lambda M, x, y: M.div(x, y, rounding_mode="trunc"),
     R(3, 4, dtype="int32", lo=-9, hi=9), np.array([2, -3, 4, -1], np.int32),
     np_fn=lambda a, b: np.trunc(a / b).astype(np.int32), id="trunc-int")
case("div", lambda M, x, y: x / y, R(4, seed=3), np.array([0.0, -0.0, 0.0, 1.0], np.float32),
     np_fn=np.true_divide, id="by-zero")
case("div", lambda M, x, y: x / y, np.array([1, 0, -3, 7]), np.array([0, 0, 2, 2]),
     np_fn=np.true_divide, id="int-by-zero")
case("add", lambda M, x, y: M.add(x, y, alpha=2), R(3, 4), R(4), np_fn=lambda a, b: a + 2 * b,
     id="alpha")
case("sub", lambda M, x, y: M.sub(x, y, alpha=3), R(3, 4, dtype="int64"),
     R(4, dtype="int64"), np_fn=lambda a, b: a - 3 * b, id="alpha-int")
case("pow", lambda M, x, y: x ** y, R(3, 4, dtype="int64", lo=-4, hi=4),
     R(3, 4, dtype="int64", lo=0, hi=4), np_fn=np.power, id="int-int")
case("pow", lambda M, x: x ** 0.5, R(3, 4, dtype="int64", lo=0, hi=9),
     np_fn=np.sqrt, id="int-to-float-scalar")
case("pow", lambda M, x: 2 ** x, R(3, 4, dtype="int64", lo=0, hi=9),
     np_fn=lambda x: 2 ** x, id="int-base-tensor-exponent")
case("pow", lambda M, x, y: x ** y, R(4, lo=-2), np.array([0.5, 2.0, -1.0, 3.0], np.float32),
     np_fn=np.power, id="negative-base")
case("maximum", lambda M, x, y: M.maximum(x, y), special(), special()[::-1].copy(),
     np_fn=np.maximum, id="nan-propagates")
case("minimum", lambda M, x, y: M.minimum(x, y), special(), special()[::-1].copy(),
     np_fn=np.minimum, id="nan-propagates")
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    case(_name, _binary(_name), special(), special()[::-1].copy(), np_fn=BINARY[_name],
         id="special")
case("logical_and", lambda M, x, y: M.logical_and(x, y), R(3, 4, dtype="int64", lo=-1, hi=2),
     R(4, lo=-1, hi=1), np_fn=np.logical_and, id="int-float")
case("logical_or", lambda M, x, y: M.logical_or(x, y), special(), R(12, dtype="bool"),
     np_fn=np.logical_or, id="nan-is-true")
case("add", lambda M, x, y: x + y, R(4, dtype="int8", lo=100, hi=127),
     R(4, dtype="int8", lo=100, hi=127), np_fn=np.add, id="int8-wraps")

# ternary and clamp
case("where", lambda M, c, x, y: M.where(c, x, y), R(3, 4, dtype="bool"), R(3, 4), R(4, seed=5),
     np_fn=np.where, id="broadcast")
case("where", lambda M, c, x, y: M.where(c, x, y), R(3, 1, dtype="bool"),
     R(4, dtype="int32"), R(3, 4, dtype="float16"), np_fn=np.where, id="promote")
case("where", lambda M, c, x: M.where(c, x, 7), R(3, 4, dtype="bool"), R(3, 4, dtype="int16"),
     np_fn=lambda c, x: np.where(c, x, 7), id="scalar-other")
case("where", lambda M, c: M.where(c, 1.5, 0), R(3, 4, dtype="bool"),
     np_fn=lambda c: np.where(c, 1.5, 0), id="two-scalars")
case("where", lambda M, c, x, y: M.where(c, x, y), R(3, dtype="bool"),
     np.array(2.5, np.float64), R(3, dtype="int64"), np_fn=np.where, id="0d-float")
case("where", lambda M, x: x.where(x > 0, 0.0), R(3, 4), np_fn=lambda x: np.where(x > 0, x, 0),
     id="method")
case("where", lambda M, x: M.where(x > 0), R(3, 4), np_fn=lambda x: np.nonzero(x > 0),
     id="nonzero")
for _lo, _hi in [(-1, 1), (None, 0.5), (-0.5, None), (2, 1)]:
    case("clamp", lambda M, x, lo=_lo, hi=_hi: M.clamp(x, lo, hi), R(3, 4),
         np_fn=lambda x, lo=_lo, hi=_hi: np.minimum(np.maximum(x, -np.inf if lo is None else lo),
                                                     np.inf if hi is None else hi),
         id=f"{_lo}-{_hi}")
case("clamp", lambda M, x: M.clamp(x, min=-1, max=2), R(3, 4, dtype="int64"),
     np_fn=lambda x: np.clip(x, -1, 2), id="int")
case("clamp", lambda M, x: x.clamp(max=1.5), R(3, 4, dtype="int64"),
     np_fn=lambda x: np.minimum(x, 1.5), id="int-float-bound")
case("clamp", lambda M, x, lo, hi: M.clamp(x, lo, hi), R(3, 4), R(4, lo=-3, hi=0),
     R(3, 1, lo=0, hi=3), np_fn=lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
     id="tensor-bounds")
case("clamp", lambda M, x: M.clamp(x, 0, 1), special(), np_fn=lambda x: np.clip(x, 0, 1),
     id="nan-stays")

# ---------------------------------------------------------------- linear algebra

MATMUL_SHAPES = [((2, 3), (3, 4)), ((3,), (3,)), ((3,), (3, 4)), ((4, 3), (3,)),
                 ((2, 4, 3), (3,)), ((3,), (2, 3, 4)), ((2, 1, 4, 3), (5, 3, 2)),
                 ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((0, 3), (3, 2)), ((2, 0), (0, 3))]
for _sa, _sb in MATMUL_SHAPES:
    case("matmul", lambda M, x, y: M.matmul(x, y), R(*_sa, seed=1), R(*_sb, seed=2),
         np_fn=np.matmul, id=f"{_sa}@{_sb}")
for _d in ("float64", "float16", "bfloat16", "int64", "int32"):
    case("matmul", lambda M, x, y: x @ y, R(3, 5, dtype=_d), R(5, 2, dtype=_d, seed=1),
         np_fn=np.matmul, id=_d, rtol=1e-2 if _d in ("float16", "bfloat16") else None,
         atol=5e-2 if _d in ("float16", "bfloat16") else None)
case("matmul", lambda M, x, y: x.t() @ y[::2], R(4, 3), R(8, 2, seed=1),
     np_fn=lambda a, b: a.T @ b[::2], id="strided")
case("mm", lambda M, x, y: M.mm(x, y), R(2, 3), R(3, 4), np_fn=np.matmul)
case("mm", lambda M, x, y: x.mm(y), R(2, 3, dtype="float64"), R(3, 1, dtype="float64"),
     np_fn=np.matmul, id="method")
case("bmm", lambda M, x, y: M.bmm(x, y), R(2, 3, 4), R(2, 4, 5), np_fn=np.matmul)
case("bmm", lambda M, x, y: x.bmm(y), R(3, 1, 2), R(3, 2, 2), np_fn=np.matmul, id="method")
case("dot", lambda M, x, y: M.dot(x, y), R(5), R(5, seed=1), np_fn=np.dot)
case("dot", lambda M, x, y: x.dot(y), R(5, dtype="int64"), R(5, dtype="int64", seed=1),
     np_fn=np.dot, id="int")
case("mv", lambda M, x, y: M.mv(x, y), R(3, 4), R(4), np_fn=np.matmul)
case("mv", lambda M, x, y: x.t().mv(y), R(4, 3), R(4), np_fn=lambda a, v: a.T @ v, id="T")
case("outer", lambda M, x, y: M.outer(x, y), R(3), R(4), np_fn=np.outer)
case("outer", lambda M, x, y: x.outer(y), R(3, dtype="int64"), R(2, dtype="float16"),
     np_fn=np.outer, id="promote")
case("t", lambda M, x: M.t(x), R(3, 4), np_fn=np.transpose, view=True)
case("t", lambda M, x: x.t(), R(4), np_fn=lambda x: x, view=True, id="1d")
case("t", lambda M, x: x.t(), R(), np_fn=lambda x: x, view=True, id="0d")
case(".T", lambda M, x: x.T, R(3, 4), np_fn=np.transpose, view=True)
case(".T", lambda M, x: x.T, R(4), np_fn=np.transpose, view=True, id="1d")
case(".T", lambda M, x: x[1:, ::2].T, R(3, 4), np_fn=lambda x: x[1:, ::2].T, view=True,
     id="strided")
case("@", lambda M, x, y: x @ y, R(2, 3), R(3), np_fn=np.matmul)

# ---------------------------------------------------------------- reductions

DIMS = [{}, {"dim": 0}, {"dim": -1}, {"dim": 1, "keepdim": True}, {"dim": (0, 2)},
        {"dim": (-1, 0), "keepdim": True}, {"dim": (), "keepdim": True}]


def _np_kw(kw):
    axis = kw.get("dim")
    if isinstance(axis, tuple) and not axis:
        axis = None
    return {"axis": axis, "keepdims": kw.get("keepdim", False)}


def _np_reduce(f, **extra):
    return lambda kw: (lambda x: f(x, **_np_kw(kw), **extra))


def _np_lse(kw):
    axis, keep = _np_kw(kw)["axis"], kw.get("keepdim", False)

    def f(x):
        x = x.astype(np.float64)
        m = np.max(x, axis=axis, keepdims=True)
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return out if keep else np.squeeze(out, axis=axis)
    return f


def _np_norm(kw):
    return lambda x: np.sqrt(np.sum(x.astype(np.float64) ** 2, **_np_kw(kw)))


# name: (NumPy reference factory, dtypes besides float32/float64/float16/bfloat16)
REDUCTIONS = {
    "sum": (_np_reduce(np.sum), ["int64", "int32", "uint8", "bool"]),
    "mean": (_np_reduce(np.mean), []),
    "prod": (_np_reduce(np.prod), ["int64", "int8", "bool"]),
    "amax": (_np_reduce(np.max), ["int64", "uint8", "bool"]),
    "amin": (_np_reduce(np.min), ["int32", "int8", "bool"]),
    "var": (_np_reduce(np.var, ddof=1), []),
    "std": (_np_reduce(np.std, ddof=1), []),
    "norm": (_np_norm, []),
    "logsumexp": (_np_lse, ["int64"]),
    "all": (_np_reduce(np.all), ["int64", "uint8", "bool"]),
    "any": (_np_reduce(np.any), ["int16", "uint8", "bool"]),
    "nansum": (_np_reduce(np.nansum), ["int64"]),
    "nanmean": (_np_reduce(np.nanmean), []),
}
_ONE_DIM = {"prod"}  # torch.prod takes one int dim
_NEEDS_DIM = {"logsumexp"}


def _reduce(name, kw):
    return lambda M, x: getattr(M, name)(x, **kw)


for _name, (_ref, _extra) in REDUCTIONS.items():
    for _kw in DIMS:
        if (_name in _ONE_DIM and isinstance(_kw.get("dim"), tuple)) or (
                _name in _NEEDS_DIM and "dim" not in _kw):
            continue
        _np = _ref(_kw)
        if _name in ("all", "any") and _kw.get("dim") == ():  # torch: dim=() reduces nothing
            def _np(x):
                return (x != 0).astype(np.uint8 if x.dtype == np.uint8 else bool)
        for _d in ["float32", "float64"] + _extra:
            case(_name, _reduce(_name, _kw), R(2, 3, 4, dtype=_d, lo=0 if _name == "prod" else -3,
                                               hi=2 if _name == "prod" else 3),
                 np_fn=_np, id=f"{_d}-{_kw}")
    for _d in ("float16", "bfloat16"):
        _kw = {"dim": 1} if _name not in _NEEDS_DIM else {"dim": -1}
        case(_name, _reduce(_name, _kw), R(2, 3, 4, dtype=_d, lo=0.5, hi=2),
             np_fn=_ref(_kw), id=_d)
    _kw = {"dim": 0} if _name in _NEEDS_DIM | _ONE_DIM else {}
    case(_name, _reduce(_name, _kw), R(), np_fn=_ref(_kw), id="0d")
    case(_name, lambda M, x, n=_name: getattr(x, n)(dim=-1), R(3, 4), np_fn=_ref({"dim": -1}),
         id="method")
for _name in ("nansum", "nanmean", "sum", "mean", "amax", "logsumexp", "all", "any"):
    _x = R(3, 4)
    _x[0, 1] = _x[2, :] = np.nan
    case(_name, _reduce(_name, {"dim": 1}), _x, np_fn=REDUCTIONS[_name][0]({"dim": 1}),
         id="nan")
case("sum", lambda M, x: x.sum(dtype=M.float64), R(3, 4, dtype="int32"),
     np_fn=lambda x: np.sum(x, dtype=np.float64), id="dtype")
case("sum", lambda M, x: x.sum(1), np.zeros((3, 0, 2), np.float32), np_fn=lambda x: x.sum(1),
     id="empty")
case("prod", lambda M, x: x.prod(), np.zeros((0,), np.int64), np_fn=np.prod, id="empty")
case("mean", lambda M, x: x.mean(dtype=M.float64), R(3, 4, dtype="int64"), np_fn=np.mean,
     id="int-with-dtype")
case("mean", lambda M, x: x.mean(0), np.zeros((0, 2), np.float32),
     np_fn=lambda x: np.full(2, np.nan, np.float32), id="empty-nan")
case("var", lambda M, x: x.var(1, correction=0), R(3, 4), np_fn=lambda x: np.var(x, 1),
     id="correction0")
case("var", lambda M, x: x.var(1, unbiased=False, keepdim=True), R(3, 4),
     np_fn=lambda x: np.var(x, 1, keepdims=True), id="unbiased-false")
case("std", lambda M, x: M.std(x, (0, 1), correction=2), R(3, 4, 2),
     np_fn=lambda x: np.std(x, (0, 1), ddof=2), id="correction2")
for _p in (1, 3, 0, math.inf, -math.inf, 0.5, "fro"):
    _np_p = 2 if _p == "fro" else _p
    case("norm", lambda M, x, p=_p: M.norm(x, p), R(3, 4),
         np_fn=lambda x, p=_np_p: np.linalg.norm(x.reshape(-1).astype(np.float64), p),
         id=f"p={_p}")
    case("norm", lambda M, x, p=_p: x.norm(p, dim=1, keepdim=True), R(3, 4),
         np_fn=lambda x, p=_np_p: np.linalg.norm(x.astype(np.float64), p, axis=1,
                                                 keepdims=True), id=f"p={_p}-dim")
case("logsumexp", lambda M, x: M.logsumexp(x, 0), np.array([-np.inf, -np.inf], np.float32),
     np_fn=lambda x: np.float32(-np.inf), id="all-neg-inf")
case("logsumexp", lambda M, x: M.logsumexp(x, 0), np.array([np.inf, 1.0], np.float32),
     np_fn=lambda x: np.float32(np.inf), id="inf")
case("logsumexp", lambda M, x: M.logsumexp(x, 1), np.array([[1000.0, 1000.0]], np.float32),
     np_fn=lambda x: np.array([1000.0 + math.log(2)]), id="large")

for _name, _np_val, _np_idx in [("max", np.max, np.argmax), ("min", np.min, np.argmin)]:
    for _d in ("float32", "int64", "float16", "bool"):
        case(_name, lambda M, x, n=_name: getattr(M, n)(x), R(3, 4, dtype=_d), np_fn=_np_val,
             id=f"all-{_d}")
        for _dim, _keep in [(0, False), (-1, True), (1, False)]:
            case(_name, lambda M, x, n=_name, d=_dim, k=_keep: tuple(getattr(M, n)(x, d, k)),
                 R(3, 4, 2, dtype=_d),
                 np_fn=lambda x, f=_np_val, g=_np_idx, d=_dim, k=_keep: (
                     f(x, d, keepdims=k), np.expand_dims(g(x, d), d) if k else g(x, d)),
                 id=f"{_d}-dim{_dim}-{_keep}")
    case(_name, lambda M, x, y, n=_name: getattr(M, n)(x, y), R(3, 4), R(4),
         np_fn=np.maximum if _name == "max" else np.minimum, id="binary")
    case(_name, lambda M, x, n=_name: getattr(x, n)(dim=0).values, R(3, 4),
         np_fn=lambda x, f=_np_val: f(x, 0), id="named")
    case(_name, lambda M, x, n=_name: tuple(getattr(M, n)(x, 0)), R(),
         np_fn=lambda x: (x, np.int64(0)), id="0d")
    _x = R(3, 4)
    _x[1, 2] = np.nan
    case(_name, lambda M, x, n=_name: tuple(getattr(M, n)(x, 1)), _x,
         np_fn=lambda x, f=_np_val: (f(x, 1), np.array([np.argmax(r) if not np.isnan(r).any()
                                                         else np.argmax(np.isnan(r)) for r in x])
                                     if f is np.max else
                                     np.array([np.argmin(r) if not np.isnan(r).any()
                                               else np.argmax(np.isnan(r)) for r in x])),
         id="nan")

for _name, _ref in [("argmax", np.argmax), ("argmin", np.argmin)]:
    for _d in ("float32", "int64", "uint8", "float16", "bfloat16"):
        case(_name, lambda M, x, n=_name: getattr(M, n)(x), R(3, 4, 5, dtype=_d, seed=3),
             np_fn=_ref, id=f"flat-{_d}")
        case(_name, lambda M, x, n=_name: getattr(M, n)(x, 1), R(3, 4, 5, dtype=_d, seed=3),
             np_fn=lambda x, f=_ref: f(x, 1), id=f"dim-{_d}")
    case(_name, lambda M, x, n=_name: getattr(x, n)(-1, keepdim=True), R(3, 4),
         np_fn=lambda x, f=_ref: f(x, -1, keepdims=True), id="keepdim")
    case(_name, lambda M, x, n=_name: getattr(x, n)(keepdim=True), R(3, 4),
         np_fn=lambda x, f=_ref: f(x, keepdims=True), id="keepdim-flat")
    case(_name, lambda M, x, n=_name: getattr(M, n)(x), np.array([1, 5, 5, 0, 5]),
         np_fn=_ref, id="first-of-ties")
    case(_name, lambda M, x, n=_name: getattr(M, n)(x, 0), special(),
         np_fn=lambda x: np.int64(0), id="nan-wins")
    case(_name, lambda M, x, n=_name: getattr(M, n)(x), R(), np_fn=lambda x: np.int64(0),
         id="0d")

_QS = [0.5, 0.0, 1.0, 0.3]
for _method in ("linear", "lower", "higher", "midpoint", "nearest"):
    for _q in _QS:
        for _kw in ({}, {"dim": 1}, {"dim": -1, "keepdim": True}):
            case("quantile", lambda M, x, q=_q, kw=_kw, m=_method: M.quantile(
                x, q, interpolation=m, **kw), R(3, 5, 2, seed=4),
                np_fn=lambda x, q=_q, kw=_kw, m=_method: np.quantile(
                    x, q, method=m, **_np_kw(kw)), id=f"{_method}-{_q}-{_kw}")
    case("quantile", lambda M, x, q, m=_method: M.quantile(x, q, 0, interpolation=m),
         R(4, 3, dtype="float64"), np.array([0.1, 0.5, 0.95]),
         np_fn=lambda x, q, m=_method: np.quantile(x, q, 0, method=m), id=f"{_method}-tensor-q")
    _x = R(3, 6)
    _x[0, 1] = _x[1, :] = np.nan
    case("nanquantile", lambda M, x, m=_method: M.nanquantile(x, 0.4, 1, interpolation=m), _x,
         np_fn=lambda x, m=_method: np.nanquantile(x, 0.4, 1, method=m), id=f"{_method}-nan")
    case("quantile", lambda M, x, m=_method: M.quantile(x, 0.4, 1, interpolation=m), _x,
         np_fn=lambda x, m=_method: np.quantile(x, 0.4, 1, method=m), id=f"{_method}-nan")
case("nanquantile", lambda M, x: M.nanquantile(x, 0.25), R(4, 5),
     np_fn=lambda x: np.nanquantile(x, 0.25), id="no-nan")
case("nanquantile", lambda M, x, q: x.nanquantile(q, dim=0, keepdim=True), R(4, 5),
     np.array([0.2, 0.7], np.float32),
     np_fn=lambda x, q: np.nanquantile(x, q, 0, keepdims=True), id="tensor-q-keepdim")
case("quantile", lambda M, x: x.quantile(0.5), R(), np_fn=lambda x: np.quantile(x, 0.5),
     id="0d")

for _d in ("float32", "int64", "int8", "bool", "float16", "bfloat16"):
    for _dim in (0, -1, 1):
        case("cumsum", lambda M, x, d=_dim: M.cumsum(x, d), R(3, 4, 2, dtype=_d),
             np_fn=lambda x, d=_dim: np.cumsum(x, d), id=f"{_d}-{_dim}",
             rtol=1e-2 if _d in ("float16", "bfloat16") else None)
case("cumsum", lambda M, x: x.cumsum(0, dtype=M.float64), R(5, dtype="int32"),
     np_fn=lambda x: np.cumsum(x, dtype=np.float64), id="dtype")
case("cumsum", lambda M, x: x.cumsum(0), R(), np_fn=lambda x: x, id="0d")
case("cumsum", lambda M, x: x.cumsum(0), special(), np_fn=np.cumsum, id="special")


def _np_sort(x, d, desc):
    idx = np.argsort(-x if desc else x, axis=d, kind="stable")
    return np.take_along_axis(x, idx, d), idx


for _d in ("float32", "int64", "float16", "bfloat16", "int8", "uint8"):
    for _dim in (0, -1):
        for _desc in (False, True):
            case("sort", lambda M, x, d=_dim, s=_desc: tuple(M.sort(x, d, descending=s)),
                 R(4, 5, dtype=_d, seed=11, lo=-1000, hi=1000),
                 np_fn=lambda x, d=_dim, s=_desc: _np_sort(x, d, s), id=f"{_d}-{_dim}-{_desc}")
case("sort", lambda M, x: tuple(x.sort()), special(),
     np_fn=lambda x: _np_sort(x, -1, False), id="nan-last")
case("sort", lambda M, x: tuple(M.sort(x, descending=True)), special(), id="nan-first-desc")
case("sort", lambda M, x: tuple(M.sort(x, stable=True)), np.array([3, 1, 3, 1, 2, 3]),
     np_fn=lambda x: _np_sort(x, -1, False), id="stable-ties")
case("sort", lambda M, x: tuple(M.sort(x)), R(), np_fn=lambda x: (x, np.int64(0)), id="0d")


def _np_softmax(x, d):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(d, keepdims=True))
    return e / e.sum(d, keepdims=True)


for _d in ("float32", "float64", "float16", "bfloat16"):
    for _dim in (0, 1, -1):
        case("softmax", lambda M, x, d=_dim: M.softmax(x, d), R(3, 4, 2, dtype=_d, hi=20),
             np_fn=lambda x, d=_dim: _np_softmax(x, d), id=f"{_d}-{_dim}")
        case("log_softmax", lambda M, x, d=_dim: M.log_softmax(x, d),
             R(3, 4, 2, dtype=_d, hi=20), np_fn=lambda x, d=_dim: np.log(_np_softmax(x, d)),
             id=f"{_d}-{_dim}", atol=5e-2 if _d in ("float16", "bfloat16") else None)
case("softmax", lambda M, x: x.softmax(-1, dtype=M.float64), R(3, 4),
     np_fn=lambda x: _np_softmax(x, -1), id="dtype")
case("softmax", lambda M, x: x.softmax(0), np.array([-np.inf, 0.0, np.inf], np.float32),
     np_fn=lambda x: np.full(3, np.nan), id="inf")
case("softmax", lambda M, x: x.softmax(0), np.array([1000.0, 1000.0], np.float32),
     np_fn=lambda x: np.array([0.5, 0.5]), id="large")
case("log_softmax", lambda M, x: x.log_softmax(1), np.array([[-np.inf, -np.inf]], np.float32),
     np_fn=lambda x: np.full((1, 2), np.nan), id="all-neg-inf")
case("softmax", lambda M, x: M.softmax(x, 0), R(), np_fn=lambda x: np.float32(1), id="0d")

# ---------------------------------------------------------------- shape operations


def _v(api, fn, np_fn, *args, id: str = "", **kw):
    case(api, fn, *(args or (R(2, 3, 4),)), np_fn=np_fn, view=True, id=id, **kw)


_v("view", lambda M, x: x.view(6, 4), lambda x: x.reshape(6, 4))
_v("view", lambda M, x: x.view(-1), lambda x: x.reshape(-1), id="-1")
_v("view", lambda M, x: x.view((2, -1, 2)), lambda x: x.reshape(2, -1, 2), id="tuple")
_v("view", lambda M, x: x.transpose(0, 1).view(3, 2, 2, 2),
   lambda x: x.transpose(1, 0, 2).reshape(3, 2, 2, 2), id="split-strided")
_v("view", lambda M, x: x[:, 1:].view(2, 8), lambda x: x[:, 1:].reshape(2, 8), id="merge-sliced")
_v("view", lambda M, x: x[:, :0].view(0, 5), lambda x: x[:, :0].reshape(0, 5), id="empty")
_v("view", lambda M, x: x[0, 0, 0].view(1, 1), lambda x: x[0, 0, 0].reshape(1, 1), id="0d")
_v("view", lambda M, x: x.view_as(M.ones(4, 6)), lambda x: x.reshape(4, 6), id="view_as")
_v("reshape", lambda M, x: x.reshape(4, 6), lambda x: x.reshape(4, 6))
_v("reshape", lambda M, x: x.transpose(0, 2).reshape(-1),
   lambda x: x.transpose(2, 1, 0).reshape(-1), id="copy")
_v("reshape", lambda M, x: x.transpose(1, 2).reshape(2, 12),
   lambda x: x.transpose(0, 2, 1).reshape(2, 12), id="copy2")
_v("reshape", lambda M, x: M.reshape(x[:, ::2], (2, 2, 2, 2)),
   lambda x: x[:, ::2].reshape(2, 2, 2, 2), id="strided-view")
_v("reshape", lambda M, x: x[:, ::2].reshape(4, 4), lambda x: x[:, ::2].reshape(4, 4),
   id="strided-copy")
_v("reshape", lambda M, x: x[1].reshape(()) if False else x[1, 2, 3].reshape(1),
   lambda x: x[1, 2, 3].reshape(1), id="0d")
_v("flatten", lambda M, x: x.flatten(), lambda x: x.reshape(-1))
_v("flatten", lambda M, x: M.flatten(x, 1), lambda x: x.reshape(2, -1), id="start")
_v("flatten", lambda M, x: x.flatten(0, -2), lambda x: x.reshape(6, 4), id="end")
_v("flatten", lambda M, x: x.transpose(0, 1).flatten(1), lambda x: x.transpose(1, 0, 2).reshape(
    3, 8), id="view-of-permuted")
_v("flatten", lambda M, x: x.transpose(0, 1).flatten(), lambda x: x.transpose(1, 0, 2).reshape(
    -1), id="copy")
_v("flatten", lambda M, x: x.flatten(), lambda x: x.reshape(1), R(), id="0d")
_v("unflatten", lambda M, x: x.unflatten(2, (2, 2)), lambda x: x.reshape(2, 3, 2, 2))
_v("unflatten", lambda M, x: M.unflatten(x, -1, (-1, 2)), lambda x: x.reshape(2, 3, 2, 2),
   id="neg")
_v("unflatten", lambda M, x: x.transpose(0, 2).unflatten(0, (2, 2)),
   lambda x: x.transpose(2, 1, 0).reshape(2, 2, 3, 2), id="permuted")
_v("squeeze", lambda M, x: x[:, :1].squeeze(), lambda x: x[:, :1].squeeze())
_v("squeeze", lambda M, x: M.squeeze(x[:, :1], 1), lambda x: x[:, :1].squeeze(1), id="dim")
_v("squeeze", lambda M, x: x.squeeze(0), lambda x: x, id="noop")
_v("squeeze", lambda M, x: x[:1, :1].squeeze((0, 1, 2)), lambda x: x[0, 0], id="tuple")
_v("squeeze", lambda M, x: x[:1, :1].squeeze(-3), lambda x: x[0, :1], id="neg")
_v("squeeze", lambda M, x: x.squeeze(), lambda x: x, R(), id="0d")
_v("squeeze", lambda M, x: x.squeeze(0), lambda x: x, R(), id="0d-dim")
for _dim in (0, 1, 3, -1, -4):
    _v("unsqueeze", lambda M, x, d=_dim: x.unsqueeze(d), lambda x, d=_dim: np.expand_dims(x, d),
       id=str(_dim))
_v("unsqueeze", lambda M, x: M.unsqueeze(x.transpose(0, 2), 1),
   lambda x: np.expand_dims(x.transpose(2, 1, 0), 1), id="permuted")
_v("unsqueeze", lambda M, x: x[:, 1:2].unsqueeze(2), lambda x: np.expand_dims(x[:, 1:2], 2),
   id="after-size-1")
_v("unsqueeze", lambda M, x: x.unsqueeze(0), lambda x: x[None], R(), id="0d")
_v("permute", lambda M, x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1))
_v("permute", lambda M, x: M.permute(x, (-1, 0, -2)), lambda x: x.transpose(2, 0, 1), id="neg")
_v("permute", lambda M, x: x[:, ::2].permute(1, 2, 0), lambda x: x[:, ::2].transpose(1, 2, 0),
   id="strided")
_v("transpose", lambda M, x: x.transpose(0, 2), lambda x: x.transpose(2, 1, 0))
_v("transpose", lambda M, x: M.transpose(x, -1, -2), lambda x: x.transpose(0, 2, 1), id="neg")
_v("transpose", lambda M, x: x.transpose(1, 1), lambda x: x, id="same")
_v("transpose", lambda M, x: x.transpose(0, -1), lambda x: x, R(), id="0d")
_v("expand", lambda M, x: x[:, :1].expand(2, 3, 4), lambda x: np.broadcast_to(x[:, :1], (2, 3, 4)))
_v("expand", lambda M, x: x[:, :1].expand(5, -1, 3, -1),
   lambda x: np.broadcast_to(x[:, :1], (5, 2, 3, 4)), id="new-dims")
_v("expand", lambda M, x: x.expand((2, 3, 4)), lambda x: x, id="same")
_v("expand", lambda M, x: x.expand(3, 2), lambda x: np.broadcast_to(x, (3, 2)), R(), id="0d")
_v("expand", lambda M, x: x[:, :1].expand(2, 3, 4)[:, 1:].transpose(0, 1),
   lambda x: np.broadcast_to(x[:, :1], (2, 3, 4))[:, 1:].transpose(1, 0, 2), id="then-views")
_v("expand_as", lambda M, x: x[0:1].expand_as(x), lambda x: np.broadcast_to(x[0:1], x.shape))
_v("broadcast_to", lambda M, x: x[:, :, :1].broadcast_to((2, 3, 4)),
   lambda x: np.broadcast_to(x[:, :, :1], (2, 3, 4)))
_v("broadcast_to", lambda M, x: M.broadcast_to(x, (5, 2, 3, 4)),
   lambda x: np.broadcast_to(x, (5, 2, 3, 4)), id="function")
_v("contiguous", lambda M, x: x.transpose(0, 1).contiguous(), lambda x: x.transpose(1, 0, 2))
_v("contiguous", lambda M, x: x.contiguous(), lambda x: x, id="already")
_v("contiguous", lambda M, x: x[:, :1].expand(2, 3, 4).contiguous(),
   lambda x: np.broadcast_to(x[:, :1], (2, 3, 4)), id="expanded")
_v("split", lambda M, x: x.split(2, 2), lambda x: np.split(x, [2], 2))
_v("split", lambda M, x: M.split(x, [1, 2], 1), lambda x: np.split(x, [1], 1), id="sizes")
_v("split", lambda M, x: x.split(2, 1), lambda x: np.split(x, [2], 1), id="uneven")
_v("split", lambda M, x: x.split(5, 0), lambda x: [x], id="larger")
_v("split", lambda M, x: x.split([0, 3, 0], 1), lambda x: [x[:, :0], x, x[:, :0]], id="zeros")
_v("chunk", lambda M, x: x.chunk(3, -1), lambda x: np.split(x, [2], -1))
_v("chunk", lambda M, x: M.chunk(x, 2, 1), lambda x: np.split(x, [2], 1), id="uneven")
_v("chunk", lambda M, x: x.chunk(4, 2), lambda x: np.split(x, 4, 2), id="exact")
_v("chunk", lambda M, x: x.chunk(5, 0), lambda x: np.split(x, 2, 0), id="more-than-size")
_v("flip", lambda M, x: x.flip(0), lambda x: np.flip(x, 0))
_v("flip", lambda M, x: M.flip(x, (0, -1)), lambda x: np.flip(x, (0, 2)), id="two")
# NOTE: ember's computed results are always contiguous; torch's keep a permuted input's
# layout, so only views have their strides compared.
case("flip", lambda M, x: x.transpose(0, 1).flip(2), R(2, 3, 4),
     np_fn=lambda x: np.flip(x.transpose(1, 0, 2), 2), id="permuted")
_v("flip", lambda M, x: x.flip(()), lambda x: x, id="none")
_v("narrow", lambda M, x: x.narrow(2, 1, 2), lambda x: x[:, :, 1:3])
_v("narrow", lambda M, x: x.narrow(-2, -2, 2), lambda x: x[:, 1:3], id="neg")
_v("select", lambda M, x: x.select(1, -1), lambda x: x[:, -1])
_v("select", lambda M, x: x.select(0, 1).select(-1, 2), lambda x: x[1, :, 2], id="twice")
_v("diagonal", lambda M, x: x.diagonal(), lambda x: np.diagonal(x))
_v("diagonal", lambda M, x: x.diagonal(1, -1, -2), lambda x: np.diagonal(x, 1, 2, 1), id="off")
_v("diagonal", lambda M, x: x.diagonal(-1, 1, 2), lambda x: np.diagonal(x, -1, 1, 2), id="neg")
_v("diagonal", lambda M, x: x.transpose(0, 2).diagonal(0, 0, 1),
   lambda x: np.diagonal(x.transpose(2, 1, 0), 0, 0, 1), id="permuted")
_v("movedim", lambda M, x: x.movedim(0, -1), lambda x: np.moveaxis(x, 0, -1))
_v("unbind", lambda M, x: x.unbind(1), lambda x: [x[:, i] for i in range(3)])
for _shapes, _dim in [(((2, 3), (1, 3)), 0), (((2, 3), (2, 1), (2, 2)), 1),
                      (((2, 3), (2, 2)), -1), (((0, 3), (2, 3)), 0),
                      (((2, 3, 1), (2, 3, 2)), 2)]:
    _args = [R(*s, seed=i) for i, s in enumerate(_shapes)]
    case("cat", lambda M, *xs, d=_dim: M.cat(xs, d), *_args,
         np_fn=lambda *xs, d=_dim: np.concatenate(xs, d), view=True, id=f"{_shapes}-{_dim}")
case("cat", lambda M, x, y: M.cat([x, y]), R(2, 3, dtype="int32"), R(1, 3, dtype="float16"),
     np_fn=lambda a, b: np.concatenate([a, b]), id="promote")
case("cat", lambda M, x, y: M.cat((x, y)), R(2, 3), np.zeros(0, np.float32),
     np_fn=lambda a, b: a, id="legacy-empty")
case("cat", lambda M, x, y: M.cat([x, y]), R(3, dtype="bool"), R(2, dtype="uint8"),
     np_fn=lambda a, b: np.concatenate([a, b]), id="bool-uint8")
case("cat", lambda M, x: M.cat([x.t(), x.t()], 1), R(3, 2),
     np_fn=lambda a: np.concatenate([a.T, a.T], 1), id="strided")
for _dim in (0, 1, 2, -1, -3):
    case("stack", lambda M, x, y, d=_dim: M.stack([x, y], d), R(2, 3), R(2, 3, seed=1),
         np_fn=lambda a, b, d=_dim: np.stack([a, b], d), view=True, id=str(_dim))
case("stack", lambda M, x, y: M.stack((x, y)), R(), R(seed=1), np_fn=lambda a, b: np.stack([a, b]),
     id="0d")
case("stack", lambda M, x, y: M.stack([x, y]), R(2, dtype="int64"), R(2, dtype="float64"),
     np_fn=lambda a, b: np.stack([a, b]), id="promote")


def _broadcast_shapes(M, *shapes):
    return tuple(M.broadcast_shapes(*shapes))


for _shapes in [((2, 1), (3, 1, 4), (1,)), ((),), ((0, 1), (3,)), ((5,), 5), (3, (2, 1)), ()]:
    case("broadcast_shapes", lambda M, s=_shapes: _broadcast_shapes(M, *s),
         np_fn=lambda s=_shapes: np.broadcast_shapes(*s), id=str(_shapes))

# ---------------------------------------------------------------- more elementwise
_MORE_BINARY = {"atan2": np.arctan2, "arctan2": np.arctan2, "hypot": np.hypot,
                "copysign": np.copysign, "fmod": np.fmod}
for _name, _ref in _MORE_BINARY.items():
    for _a, _b in [("float32", "float32"), ("float64", "float32"), ("float16", "float16"),
                   ("bfloat16", "bfloat16"), ("int64", "float32"), ("int32", "int64")]:
        if _name == "hypot" and "int" in _a:
            continue
        _lo = 1 if _name == "fmod" and "int" in _b else -3
        case(_name, _binary(_name), R(3, 4, dtype=_a, seed=1), R(4, dtype=_b, seed=2, lo=_lo),
             np_fn=_ref if "16" not in _a else None, id=f"{_a}-{_b}")
    case(_name, _binary(_name), R(2, 1, 3, seed=3), R(4, 1, seed=4, lo=0.5), np_fn=_ref,
         id="broadcast")
    case(_name, _binary(_name), R(seed=3), R(0, 3, seed=4, lo=0.5), np_fn=_ref, id="0d-empty")
    case(_name, lambda M, x, y, n=_name: getattr(x, n)(y), special(), special()[::-1].copy(),
         np_fn=_ref, id="special-method")
case("fmod", lambda M, x: M.fmod(x, 2.5), R(3, 4, dtype="int64", lo=-9, hi=9),
     np_fn=lambda x: np.fmod(x, 2.5), id="int-by-float")
case("fmod", lambda M, x: x.fmod(-3), R(3, 4, dtype="int8", lo=-9, hi=9),
     np_fn=lambda x: np.fmod(x, -3), id="int8")
case("copysign", lambda M, x: M.copysign(x, -1), R(3, 4, dtype="int64"),
     np_fn=lambda x: np.copysign(x, -1.0), id="int-scalar")
for _d in INTS:
    _counts = np.array([-1, 0, 1, 3, 7, 8, 9, 63, 64, 70], dtype=np.int64)
    _vals = R(10, dtype=_d, lo=-100, hi=100, seed=8)
    case("bitwise_left_shift", lambda M, x, s: M.bitwise_left_shift(x, s.to(x.dtype)), _vals,
         _counts, id=_d)
    case("bitwise_right_shift", lambda M, x, s: x >> s.to(x.dtype), _vals, _counts, id=_d)
    case("bitwise_left_shift", lambda M, x: x << 2, _vals,
         np_fn=lambda x: np.left_shift(x, 2), id=f"{_d}-scalar")
    case("bitwise_right_shift", lambda M, x: 64 >> x.clamp(0, 6), _vals, id=f"{_d}-reflected")
case("bitwise_left_shift", lambda M, x, y: x << y, R(3, 1, dtype="int32"),
     R(4, dtype="int64", lo=0, hi=5), np_fn=np.left_shift, id="broadcast-promote")
case("bitwise_left_shift", lambda M, x: x << 1, R(3, dtype="bool"),
     np_fn=lambda x: x.astype(np.int64) << 1, id="bool-scalar")
for _d in ("float32", "float64", "float16", "int64"):
    _x = R(3, 4, dtype=_d, seed=1)
    _y = (_x + R(3, 4, dtype=_d, seed=2, lo=-1e-5, hi=1e-5) if "int" not in _d
          else R(3, 4, dtype=_d, seed=2))
    case("isclose", lambda M, x, y: M.isclose(x, y), _x, _y, id=_d)
    case("isclose", lambda M, x, y: M.isclose(x, y, rtol=0.1, atol=0.5), _x,
         R(3, 4, dtype=_d, seed=2), id=f"{_d}-tolerances")
case("isclose", lambda M, x, y: M.isclose(x, y, equal_nan=True), special(),
     special()[::-1].copy(), id="equal_nan")
case("isclose", lambda M, x, y: x.isclose(y), special(), special(), id="special")
case("isclose", lambda M, x, y: M.isclose(x, y, rtol=0, atol=0), special(), special(),
     id="exact")
case("allclose", lambda M, x, y: M.allclose(x, y), R(3, 4), R(3, 4), id="equal")
case("allclose", lambda M, x, y: x.allclose(y + 1e-3), R(3, 4), R(3, 4), id="far")
case("allclose", lambda M, x, y: M.allclose(x, y, equal_nan=True), special(), special(),
     id="nan")
for _w in (0.25, 0.75, -1.0, 2.0):
    case("lerp", lambda M, x, y, w=_w: M.lerp(x, y, w), R(3, 4), R(4, seed=1),
         np_fn=lambda x, y, w=_w: x + w * (y - x), id=f"scalar-{_w}")
case("lerp", lambda M, x, y, w: M.lerp(x, y, w), R(3, 4, dtype="float64"),
     R(4, dtype="float64", seed=1), R(3, 1, dtype="float64", seed=2, lo=-1, hi=2),
     np_fn=lambda x, y, w: x + w * (y - x), id="tensor-weight")
case("lerp", lambda M, x, y, w: x.lerp(y, w), R(2, 3, dtype="float16"),
     R(2, 3, dtype="float16", seed=1), R(dtype="float16", seed=2), id="method-0d-weight")
case("clamp", lambda M, x, lo, hi: M.clamp(x, lo, hi), R(3, 4), R(4, seed=1, lo=-3, hi=0),
     R(3, 1, seed=2, lo=0, hi=3), np_fn=lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
     id="tensor-bounds")

# ---------------------------------------------------------------- scans, selections, triangles
for _d in ("float32", "float64", "int64", "int32", "bool", "float16"):
    case("cumprod", lambda M, x: M.cumprod(x, 1), R(3, 5, dtype=_d, lo=-2, hi=2), id=_d)
    case("cummax", lambda M, x: M.cummax(x, 1), R(3, 6, dtype=_d, lo=-2, hi=2), id=_d)
    case("cummin", lambda M, x: x.cummin(0), R(6, 3, dtype=_d, lo=-2, hi=2), id=_d)
    case("tril", lambda M, x: M.tril(x), R(3, 4, dtype=_d), id=_d)
    case("triu", lambda M, x: x.triu(-1), R(2, 3, 4, dtype=_d), id=_d)
    if _d != "bool":
        case("topk", lambda M, x: M.topk(x, 2), R(3, 5, dtype=_d, lo=-50, hi=50), id=_d)
        case("kthvalue", lambda M, x: M.kthvalue(x, 2, 0), R(4, 3, dtype=_d, lo=-50, hi=50),
             id=_d)
for _d in ("float32", "float64", "float16", "bfloat16"):
    case("logcumsumexp", lambda M, x: M.logcumsumexp(x, -1), R(3, 5, dtype=_d), id=_d)
for _shape in [(), (0, 3), (4, 0)]:
    case("cumprod", lambda M, x: M.cumprod(x, 0), R(*_shape), id=f"{_shape}")
    case("cummax", lambda M, x: M.cummax(x, 0), R(*_shape), id=f"{_shape}")
    case("logcumsumexp", lambda M, x: M.logcumsumexp(x, 0), R(*_shape), id=f"{_shape}")
case("cumprod", lambda M, x: M.cumprod(x, 0, dtype=M.float64), R(5, dtype="int32"),
     id="dtype")
case("cumprod", lambda M, x: x.cumprod(0), np.array([2.0, 0.0, 3.0, np.nan, np.inf]),
     id="special")
case("cummax", lambda M, x: M.cummax(x, 0), special(), id="special")
case("cummin", lambda M, x: M.cummin(x, 0), special()[::-1].copy(), id="special")
case("cummax", lambda M, x: M.cummax(x, 0), np.array([1, 3, 3, 2, 3]), id="ties-latest")
case("logcumsumexp", lambda M, x: M.logcumsumexp(x, 0),
     np.array([-1000.0, 0.0, 1000.0, -np.inf, np.inf, np.nan]), id="extremes")
case("topk", lambda M, x: M.topk(x, 3, dim=0, largest=False), R(5, 2, lo=-50, hi=50),
     id="smallest")
case("topk", lambda M, x: M.topk(x, 4), np.array([1.0, np.nan, 3.0, -np.inf, 2.0, np.inf]),
     id="nan-largest")
case("topk", lambda M, x: x.topk(1), R(), id="0d")
case("topk", lambda M, x: M.topk(x, 0), R(3, 4), id="k0")
case("kthvalue", lambda M, x: M.kthvalue(x, 3, keepdim=True), R(2, 5, lo=-50, hi=50),
     id="keepdim")
case("kthvalue", lambda M, x: x.kthvalue(1), R(), id="0d")
case("tril", lambda M, x: M.tril(x, 2), R(3, 5), id="diagonal")
case("triu", lambda M, x: M.triu(x, -5), R(3, 5), id="all")
case("tril", lambda M, x: M.tril(x), R(0, 3), id="empty")
case("diag", lambda M, x: x.diag(), R(3, 4), id="method-2d")
case("diag", lambda M, x: x.diag(-1), R(3), id="method-1d")

# ---------------------------------------------------------------- scatters
_IDX = np.array([[0, 1, 0, 3], [2, 2, 0, 1], [3, 3, 3, 3]])
for _d in ("float32", "float64", "int64", "int32", "float16"):
    case("scatter", lambda M, x, s, i: M.scatter(x, 1, i, s), R(3, 5, dtype=_d),
         R(3, 4, dtype=_d, seed=1), _IDX, id=_d)
    case("scatter_add", lambda M, x, s, i: x.scatter_add(1, i, s), R(3, 5, dtype=_d),
         R(3, 4, dtype=_d, seed=1), _IDX, id=_d)
    for _red in ("sum", "prod", "mean", "amax", "amin"):
        for _inc in (True, False):
            case("scatter_reduce", lambda M, x, s, i, r=_red, inc=_inc: M.scatter_reduce(
                x, 1, i, s, r, include_self=inc), R(3, 5, dtype=_d),
                R(3, 4, dtype=_d, seed=1), _IDX, id=f"{_d}-{_red}-{_inc}")
    case("index_add", lambda M, x, s, i: M.index_add(x, 0, i, s), R(3, 4, dtype=_d),
         R(5, 4, dtype=_d, seed=1), np.array([0, 2, 0, 1, 2]), id=_d)
    case("index_put", lambda M, x, v, i: M.index_put(x, (i,), v, accumulate=True),
         R(4, 3, dtype=_d), R(3, dtype=_d, seed=1), np.array([0, 3, 0]), id=_d)
case("scatter", lambda M, x, i: x.scatter(0, i, -2.5), R(3, 4), np.array([[0, 1, 2, 0]]),
     id="value")
case("scatter", lambda M, x, s, i: M.scatter(x, 1, i, s, reduce="add"), R(3, 5), R(3, 4),
     _IDX, id="reduce-add")
case("scatter", lambda M, x, s, i: M.scatter(x, 1, i, s, reduce="multiply"), R(3, 5), R(3, 4),
     _IDX, id="reduce-multiply")
case("scatter", lambda M, x, s, i: M.scatter(x, 0, i, s), R(0, 3), R(0, 3),
     np.zeros((0, 3), np.int64), id="empty")
case("scatter_add", lambda M, x, s, i: M.scatter_add(x, 0, i, s), R(5), R(3),
     np.array([4, 4, 0]), id="1d")
case("scatter_reduce", lambda M, x, s, i: M.scatter_reduce(x, 0, i, s, "amax"), special(),
     special()[::-1].copy(), np.arange(12) % 3, id="special")
case("index_add", lambda M, x, s, i: x.index_add(1, i, s, alpha=-2), R(3, 4), R(3, 2),
     np.array([3, 3]), id="alpha")
case("index_put", lambda M, x, v, i, j: M.index_put(x, (i, j), v), R(3, 4), R(2),
     np.array([0, 2]), np.array([1, 3]), id="two-indices")
case("index_put", lambda M, x, v, m: x.index_put((m,), v), R(4, 3), R(3),
     np.array([True, False, True, False]), id="mask")

# ---------------------------------------------------------------- value-dependent results
for _d in ("float32", "int64", "int8", "bool", "float64"):
    case("unique", lambda M, x: M.unique(x, return_inverse=True, return_counts=True),
         R(4, 5, dtype=_d, lo=-3, hi=3), id=_d)
    case("unique", lambda M, x: x.unique(dim=1, return_counts=True),
         R(2, 6, dtype=_d, lo=0, hi=2), id=f"{_d}-dim")
case("unique", lambda M, x: M.unique(x), np.array([np.nan, 1.0, np.nan, 0.0, 1.0]), id="nan")
case("unique", lambda M, x: M.unique(x, return_inverse=True), R(), id="0d")
case("unique", lambda M, x: M.unique(x, return_inverse=True), R(0, 3), id="empty")
case("unique", lambda M, x: M.unique(x, dim=0, return_inverse=True),
     np.array([[1, 2], [1, 2], [0, 5]]), id="rows")
for _d in ("int64", "int32", "uint8", "int16"):
    case("bincount", lambda M, x: M.bincount(x), R(9, dtype=_d, lo=0, hi=6), id=_d)
case("bincount", lambda M, x, w: x.bincount(w, minlength=8), R(9, dtype="int64", lo=0, hi=6),
     R(9), id="weights-float32")
case("bincount", lambda M, x, w: M.bincount(x, weights=w), R(9, dtype="int64", lo=0, hi=6),
     R(9, dtype="int32"), id="weights-int")
case("bincount", lambda M, x: M.bincount(x, minlength=3), np.zeros(0, np.int64), id="empty")
_SEQ = np.array([1.0, 3.0, 3.0, 5.0, 8.0])
for _right in (False, True):
    case("searchsorted", lambda M, s, v, r=_right: M.searchsorted(s, v, right=r), _SEQ,
         np.array([[3.0, 0.0, 9.0], [5.0, 3.5, np.nan]]), id=f"right-{_right}")
case("searchsorted", lambda M, s, v: M.searchsorted(s, v, side="right", out_int32=True),
     _SEQ.astype(np.int64), np.array([3, 0, 8, 9]), id="side-int32")
case("searchsorted", lambda M, s: M.searchsorted(s, 3.0), _SEQ, id="scalar")
case("searchsorted", lambda M, s, v: M.searchsorted(s, v), np.sort(R(2, 3, 6), -1),
     R(2, 3, 4, seed=1), id="batched")
case("searchsorted", lambda M, s, v, o: M.searchsorted(s, v, sorter=o),
     np.array([5.0, 1.0, 3.0]), np.array([2.0, 4.0, 6.0]), np.array([1, 2, 0]), id="sorter")

# ---------------------------------------------------------------- running the registry

# The names of API.md's "Operations" section, each of which must have a case above.
API_OPERATIONS = [
    "add", "sub", "mul", "div", "pow", "neg", "abs", "square", "sqrt", "rsqrt", "exp", "log",
    "log1p", "expm1", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "maximum", "minimum",
    "clamp", "where", "sign", "floor", "ceil", "round", "reciprocal", "eq", "ne", "lt", "le",
    "gt", "ge", "logical_and", "logical_or", "logical_not", "isnan", "isfinite", "nan_to_num",
    "multiply", "@", "matmul", "mm", "bmm", "dot", "mv", "outer", "t", ".T", "transpose", "sum",
    "mean", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "var", "std", "norm",
    "logsumexp", "all", "any", "quantile", "nanquantile", "nansum", "nanmean", "cumsum", "sort",
    "softmax", "log_softmax", "view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze",
    "permute", "transpose", "expand", "expand_as", "broadcast_to", "contiguous", "cat", "stack",
    "split", "chunk", "flip", "broadcast_shapes",
    "erf", "erfc", "erfinv", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
    "atan2", "arctan2", "hypot", "copysign", "fmod", "bitwise_left_shift",
    "bitwise_right_shift", "isclose", "allclose", "lerp", "cumprod", "cummax", "cummin",
    "logcumsumexp", "topk", "kthvalue", "tril", "triu", "diag", "scatter", "scatter_add",
    "scatter_reduce", "index_add", "index_put", "unique", "bincount", "searchsorted",
]


def test_every_api_operation_has_a_case():
    covered = {c.api for c in CASES}
    missing = [n for n in API_OPERATIONS if n not in covered]
    assert not missing, f"operations without a case: {missing}"


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_op(c: Case):
    check(c.fn, *c.args, np_fn=c.np_fn, **c.kw)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
def test_operators_match_functions(name):
    x, y = em.tensor(R(3, 4)), em.tensor(R(4, lo=0.5))
    np.testing.assert_array_equal(_PY[name](x, y).numpy(), getattr(em, name)(x, y).numpy())
    np.testing.assert_array_equal(getattr(x, name)(y).numpy(), getattr(em, name)(x, y).numpy())


def test_reflected_operators_with_numpy_left_operand():
    """ndarray + Tensor defers to the tensor (`__array_priority__`): the result is a Tensor."""
    a, t = R(2, 3), em.tensor(R(3, seed=1))
    out = a + t
    assert isinstance(out, em.Tensor)
    np.testing.assert_allclose(out.numpy(), a + t.numpy(), rtol=1e-6)


@needs_torch
def test_method_forms_exist_like_torch():
    """Every function-style operation with a torch method also exists as an ember method."""
    names = [n for n in API_OPERATIONS if n.isidentifier() and hasattr(torch.Tensor, n)]
    missing = [n for n in names if not hasattr(em.Tensor, n)]
    assert not missing, missing


# ---------------------------------------------------------------- regressions


def test_results_that_are_their_realised_input_are_readable():
    x = em.tensor([5.0])
    assert x.sum(0, keepdim=True).tolist() == [5.0]
    assert em.cat([x]).tolist() == [5.0]


def test_integer_tensor_to_negative_integer_tensor_power():
    x = em.tensor([2, -1, 1, -2, 0]) ** em.tensor([-1, -1, -2, -3, 1])
    assert x.tolist() == [0, -1, 1, 0, 0]


def test_weak_int_scalar_out_of_the_tensor_dtype_range_wraps():
    assert (em.ones(2, dtype=em.int8) + 200).tolist() == [-55, -55]
