"""The reference interpreter: the executable specification of every Op.

It evaluates nodes one by one with plain NumPy: no fusion, no cleverness. Every
other execution path is tested against it, and eager mode runs on it. One rule
per Op in `IMPL`; a rule takes the node and its inputs' values and returns the
node's value (any array of the right shape; `evaluate` casts it to the node's
dtype and rounds bfloat16 results).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..codegen.numpy_policy import ROW_SUM_MAX, sums_rows
from ..ir import dtypes as dt
from ..ir.graph import toposort
from ..ir.node import Node
from ..ir.ops import MOVEMENT, Op
from . import philox, special
from .buffers import host, lookup, realized
from .devices import upload

__all__ = ["evaluate", "evaluate_on", "IMPL", "IntegerDivisionByZero", "check_divisor",
           "float_mod", "row_sums", "sum_last"]


def _strided(flat: np.ndarray, view) -> np.ndarray:
    base = flat[view.offset:] if view.offset else flat
    item = flat.itemsize
    return as_strided(base, view.shape, tuple(s * item for s in view.strides), writeable=False)


def _write(n, dest, src):
    out = np.array(dest, copy=True)
    target = as_strided(out[n.arg.offset:], n.arg.shape,
                        tuple(s * out.itemsize for s in n.arg.strides))
    target[...] = src
    return out


def _acc(n):
    """The NumPy dtype that reductions and matmuls accumulate in."""
    return np.float32 if n.dtype in (dt.float16, dt.bfloat16) else n.dtype.np


def sum_last(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The float sums of x's last axis (kept as a dim of 1), into `out` if given:
    `row_sums` for rows of 2 to ROW_SUM_MAX elements, NumPy's pairwise sum otherwise."""
    if 2 <= x.shape[-1] <= ROW_SUM_MAX:
        return row_sums(x, out)
    return np.add.reduce(x, axis=-1, keepdims=True, out=out)


def row_sums(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The sums of x's last axis (kept as a dim of 1), into `out` if given.

    NOTE: x is made contiguous first: einsum sums a strided row in another order."""
    x = np.ascontiguousarray(x)
    if out is None:
        return np.einsum("...i->...", x)[..., None]
    np.einsum("...i->...", x, out=out[..., 0])
    return out


def _reduce(fn):
    def rule(n, x):
        if fn in (np.max, np.min) and any(x.shape[a] == 0 for a in n.arg):
            raise RuntimeError(
                f"max/min of an empty tensor of shape {x.shape} over dims {list(n.arg)}: "
                "the operation has no identity; specify a non-empty dim")
        kwargs = {"dtype": _acc(n)} if fn in (np.sum, np.prod) else {}
        if fn is np.sum and sums_rows(x.shape, n.arg, x.dtype, _acc(n)):
            out = sum_last(x)
        else:
            out = fn(x, axis=n.arg, keepdims=True, **kwargs)
        if fn is np.sum and out.dtype.kind == "f":
            # NOTE: as torch, a float sum starts from +0.0: NumPy's starts from the first
            # element where the layout makes it (a sum of -0.0 is -0.0 there)
            np.add(out, 0.0, out=out)
        return out
    return rule


def _argsort(n, x):
    axis, descending = n.arg
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    # NOTE: descending keeps equal elements in their original order and puts NaN
    # first, as torch does: sort the reversed input ascending, then reverse back.
    size = x.shape[axis]
    flipped = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return np.flip(size - 1 - flipped, axis)


def _scatter(accumulate):
    def rule(n, dest, idx, src):
        out = np.array(dest, copy=True)
        index = (slice(None),) * n.arg + (idx,)
        if accumulate:
            add_at(out, n.arg, idx, src)
        else:
            out[index] = src
        return out
    return rule


def add_at(out: np.ndarray, axis: int, idx: np.ndarray, src) -> None:
    """`np.add.at(out, (:, ..., idx), src)` (idx along `axis`), in the same order.

    NOTE: np.add.at pays its per-index overhead once per index: an embedding's gradient
    (2048 rows of 64 into a table of 96) took 2 ms so. Here the rows are laid out in
    rounds instead, round k holding every index's k-th row (rows in their order) and
    -0.0 where an index has fewer, and the rounds are added to `out` one after another:
    each element gets its addends one at a time in the order np.add.at adds them, and
    x + -0.0 is x for every float x (a -0.0 and a NaN too), so the sums are the same,
    bit for bit. Where the rounds would take much more memory than the rows (one index
    repeated far more often than the others), or the indices need np.add.at's wrapping
    and bounds checks, np.add.at runs.
    """
    index = (slice(None),) * axis + (idx,)
    if idx.ndim != 1 or idx.size < 2 or idx.dtype.kind not in "iu" or out.dtype.kind != "f":
        np.add.at(out, index, src)
        return
    size = out.shape[axis]
    if idx.min() < 0 or idx.max() >= size:
        np.add.at(out, index, src)
        return
    counts = np.bincount(idx, minlength=size)
    rounds = int(counts.max())
    rest = out.size // size if size else 0
    if rounds * size > _ROUNDS_SLACK * idx.size + (1 << 16) // max(rest, 1):
        np.add.at(out, index, src)
        return
    moved = np.moveaxis(out, axis, 0)
    rows = np.moveaxis(np.broadcast_to(src, out.shape[:axis] + idx.shape
                                       + out.shape[axis + 1:]), axis, 0)
    order = np.argsort(idx, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(idx.size) - (np.cumsum(counts) - counts)[idx[order]]
    padded = np.full((rounds,) + moved.shape, -0.0, out.dtype)
    padded[rank, idx] = rows
    for k in range(rounds):
        np.add(moved, padded[k], out=moved)


# add_at's rounds hold at most this many times the rows' elements (plus 64K)
_ROUNDS_SLACK = 4


_COMBINE = {"prod": np.multiply, "amax": np.maximum, "amin": np.minimum}


def _identity(kind: str, dtype: np.dtype):
    """What a combination by `kind` starts from in `dtype`."""
    if kind == "prod":
        return 1
    if dtype.kind == "f":
        return -np.inf if kind == "amax" else np.inf
    if dtype.kind == "b":
        return kind == "amin"
    info = np.iinfo(dtype)
    return info.min if kind == "amax" else info.max


def _scatter_reduce(n, dest, idx, src):
    axis, kind, include_self = n.arg
    out = np.array(dest, copy=True)
    where = (slice(None),) * axis + (idx,)
    if not include_self:
        out[where] = _identity(kind, out.dtype)
    _COMBINE[kind].at(out, where, src)
    return out


def _take(n, x, idx):
    size = x.shape[n.arg]
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = int(idx[(idx < 0) | (idx >= size)].flat[0])
        raise IndexError(f"index {bad} is out of bounds for dimension {n.arg} with size {size}")
    return np.take(x, idx, axis=n.arg)


def _const(n):
    return np.broadcast_to(np.array(n.arg, dtype=n.dtype.np), n.shape)


def _rand(n):
    seed, seq, stream = n.arg
    return philox.uniform(seed, seq, stream, n.numel, n.dtype.name).reshape(n.shape)


def _arange(n):
    start, step = n.arg
    return start + step * np.arange(n.shape[0], dtype=np.float64 if n.dtype.is_floating_point
                                    else np.int64)


def _not(n, x):
    return np.logical_not(x) if x.dtype == np.bool_ else np.invert(x)


def int_pow(a, b):
    """Integer power; as torch, x ** -k is 0 for |x| > 1, 1 for x = 1, +-1 for x = -1."""
    a, b = np.asarray(a), np.asarray(b)
    neg = b < 0
    if not neg.any():
        return np.power(a, b)
    safe = np.power(a, np.where(neg, 0, b))
    odd = np.remainder(b, 2) != 0
    small = np.where(a == 1, 1, np.where(a == -1, np.where(odd, -1, 1), 0))
    return np.where(neg, small.astype(safe.dtype), safe)


def _pow(n, a, b):
    if n.dtype.is_integer:
        return int_pow(a, b)
    if n.arg is not None:
        return elementwise_pow(a, b)
    e = n.inputs[1]
    if e.op is Op.CONST:
        # NOTE: a power by a number takes NumPy's scalar path (sqrt for 0.5), as the
        # kernels pass it, whatever array holds the constant's value here (a kept one)
        b = np.asarray(e.arg, dtype=b.dtype)
    return np.power(a, b)


def elementwise_pow(a, b):
    """`a ** b` by pow() of each element, whatever b's layout.

    NOTE: NumPy computes a float power whose exponent is one scalar (or broadcast
    along the loop) of 0.5, 2 or -1 as sqrt, square or reciprocal: right for a power by
    a number, as PyTorch's is, but a tensor of exponents is pow() elementwise in
    PyTorch even where its elements are equal (-inf ** 0.5 is inf, not sqrt's nan). A
    POW node whose arg is set is of the second kind: its exponents are laid out whole.
    """
    shape = np.broadcast_shapes(np.shape(a), np.shape(b))
    if not shape:  # NOTE: NumPy's scalar power takes the fast paths too
        out = np.power(np.reshape(a, (1,)), np.reshape(b, (1,))).reshape(())
        return out if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) else out[()]
    b = np.broadcast_to(b, shape)
    if 0 in b.strides:  # NOTE: a size-1 array with stride 0 counts as contiguous
        b = b.copy()
    return np.power(a, b)


class IntegerDivisionByZero(RuntimeError, ZeroDivisionError):
    """An integer `//` or `%` by zero: torch's RuntimeError("ZeroDivisionError"), which
    `except ZeroDivisionError` catches too."""


def check_divisor(b) -> None:
    """Raise IntegerDivisionByZero if integer divisor `b` holds a zero."""
    if not np.all(b):
        raise IntegerDivisionByZero("ZeroDivisionError: integer division or modulo by zero")


def float_mod(a, b):
    """torch's float remainder: fmod(a, b), plus b where that is nonzero and its sign
    differs from b's. NumPy's remainder is the same but for a zero result, which takes
    b's sign there and a's (fmod's) in torch."""
    m = np.fmod(a, b)
    return np.where((m != 0) & ((b < 0) != (m < 0)), m + b, m)


def _mod(a, b):
    return float_mod(a, b) if np.result_type(a, b).kind == "f" else np.remainder(a, b)


def _cumsum(n, x):
    """Running sum in the accumulation dtype; as torch, a float sum starts from +0.0
    (NumPy's from the first element: a run of -0.0 stays -0.0 there, +0.0 in torch)."""
    out = np.cumsum(x, axis=n.arg, dtype=_acc(n))
    if out.dtype.kind == "f":
        np.add(out, 0.0, out=out)
    return out


_SCANS = {"prod": None, "max": np.maximum, "min": np.minimum, "logsumexp": np.logaddexp}


def _scan(n, x):
    """A running product (in the accumulation dtype), maximum, minimum (NaN
    propagates) or log-sum-exp along the axis."""
    axis, kind = n.arg
    if kind == "prod":
        return np.cumprod(x, axis=axis, dtype=_acc(n))
    if kind == "logsumexp":
        x = x.astype(_acc(n), copy=False)
    return _SCANS[kind].accumulate(x, axis=axis)


def _int_div(fn):
    """floor_divide / remainder; integers by zero raise, as in torch (NumPy gives 0)."""
    def rule(n, a, b):
        if n.dtype.is_integer:
            check_divisor(b)
        return fn(a, b)
    return rule


IMPL = {
    Op.BUFFER: lambda n: lookup(n.arg).host().reshape(n.shape),
    Op.CONST: _const,
    Op.RAND: _rand,
    Op.ARANGE: _arange,
    Op.NEG: lambda n, x: np.negative(x),
    Op.EXP: lambda n, x: np.exp(x),
    Op.LOG: lambda n, x: np.log(x),
    Op.SIN: lambda n, x: np.sin(x),
    Op.COS: lambda n, x: np.cos(x),
    Op.TAN: lambda n, x: np.tan(x),
    Op.TANH: lambda n, x: np.tanh(x),
    Op.SQRT: lambda n, x: np.sqrt(x),
    Op.ABS: lambda n, x: np.abs(x),
    Op.SIGN: lambda n, x: np.sign(x),
    Op.FLOOR: lambda n, x: np.floor(x),
    Op.CEIL: lambda n, x: np.ceil(x),
    Op.ROUND: lambda n, x: np.round(x),
    Op.TRUNC: lambda n, x: np.trunc(x),
    Op.LOG1P: lambda n, x: np.log1p(x),
    Op.EXPM1: lambda n, x: np.expm1(x),
    Op.EXP2: lambda n, x: np.exp2(x),
    Op.RECIP: lambda n, x: np.reciprocal(x),
    Op.NOT: _not,
    Op.ERF: lambda n, x: special.erf(x),
    Op.ERFC: lambda n, x: special.erfc(x),
    Op.ERFINV: lambda n, x: special.erfinv(x),
    Op.ASIN: lambda n, x: np.arcsin(x),
    Op.ACOS: lambda n, x: np.arccos(x),
    Op.ATAN: lambda n, x: np.arctan(x),
    Op.SINH: lambda n, x: np.sinh(x),
    Op.COSH: lambda n, x: np.cosh(x),
    Op.ASINH: lambda n, x: np.arcsinh(x),
    Op.ACOSH: lambda n, x: np.arccosh(x),
    Op.ATANH: lambda n, x: np.arctanh(x),
    Op.CAST: lambda n, x: x.astype(n.dtype.np),
    Op.ADD: lambda n, a, b: np.add(a, b),
    Op.SUB: lambda n, a, b: np.subtract(a, b),
    Op.MUL: lambda n, a, b: np.multiply(a, b),
    Op.DIV: lambda n, a, b: np.true_divide(a, b),
    Op.POW: _pow,
    Op.MAX: lambda n, a, b: np.maximum(a, b),
    Op.MIN: lambda n, a, b: np.minimum(a, b),
    Op.LT: lambda n, a, b: np.less(a, b),
    Op.LE: lambda n, a, b: np.less_equal(a, b),
    Op.EQ: lambda n, a, b: np.equal(a, b),
    Op.NE: lambda n, a, b: np.not_equal(a, b),
    Op.AND: lambda n, a, b: np.bitwise_and(a, b),
    Op.OR: lambda n, a, b: np.bitwise_or(a, b),
    Op.XOR: lambda n, a, b: np.bitwise_xor(a, b),
    Op.FLOORDIV: _int_div(np.floor_divide),
    Op.MOD: _int_div(_mod),
    Op.ATAN2: lambda n, a, b: np.arctan2(a, b),
    Op.HYPOT: lambda n, a, b: np.hypot(a, b),
    Op.COPYSIGN: lambda n, a, b: np.copysign(a, b),
    Op.FMOD: _int_div(np.fmod),
    Op.SHL: lambda n, a, b: np.left_shift(a, b),
    Op.SHR: lambda n, a, b: np.right_shift(a, b),
    Op.WHERE: lambda n, c, a, b: np.where(c, a, b),
    Op.RESHAPE: lambda n, x: np.reshape(x, n.arg),
    Op.PERMUTE: lambda n, x: np.transpose(x, n.arg),
    Op.EXPAND: lambda n, x: np.broadcast_to(x, n.arg),
    Op.SLICE: lambda n, x: x[tuple(slice(*s) for s in n.arg)],
    Op.FLIP: lambda n, x: np.flip(x, n.arg),
    Op.AS_STRIDED: lambda n, x: _strided(np.ascontiguousarray(x), n.arg),
    Op.WRITE: _write,
    Op.REDUCE_SUM: _reduce(np.sum),
    Op.REDUCE_PROD: _reduce(np.prod),
    Op.REDUCE_MAX: _reduce(np.max),
    Op.REDUCE_MIN: _reduce(np.min),
    Op.MATMUL: lambda n, a, b: np.matmul(a.astype(_acc(n), copy=False),
                                         b.astype(_acc(n), copy=False)),
    Op.TAKE: _take,
    Op.SCATTER: _scatter(False),
    Op.SCATTER_ADD: _scatter(True),
    Op.ARGSORT: _argsort,
    Op.CUMSUM: _cumsum,
    Op.SCAN: _scan,
    Op.SCATTER_REDUCE: _scatter_reduce,
}


def _conform(n: Node, value) -> np.ndarray:
    """A rule's `value` as node `n`'s: cast to its dtype, bfloat16 rounded, shape checked."""
    value = np.asarray(value)
    if value.dtype != n.dtype.np:
        value = value.astype(n.dtype.np)
    if n.dtype is dt.bfloat16 and n.op not in MOVEMENT and n.op is not Op.BUFFER:
        value = dt.round_bf16(value).reshape(value.shape)
    if value.shape != n.shape:  # pragma: no cover - a broken rule, caught in tests
        raise AssertionError(f"{n.op} produced shape {value.shape}, expected {n.shape}")
    return value


def evaluate_on(outputs: list[Node], device: str) -> list:
    """`evaluate`'s values in the memory of `device`: computed in host memory, copied to
    a GPU's (eager mode and the interpreter back end on cuda tensors)."""
    values = evaluate(outputs)
    return values if device == "cpu" else [upload(v, device) for v in values]


def evaluate(outputs: list[Node]) -> list[np.ndarray]:
    """The values of `outputs`, computed node by node."""
    values: dict[int, np.ndarray] = {}
    cached = realized

    def known(n):
        return n in cached

    with np.errstate(all="ignore"):
        for n in toposort(outputs, stop=known):
            hit = cached.get(n)
            if hit is not None:
                values[id(n)] = host(hit)  # NOTE: a value kept in device memory is copied
                continue
            args = [values[id(i)] for i in n.inputs]
            values[id(n)] = _conform(n, IMPL[n.op](n, *args))
    return [values[id(o)] for o in outputs]
