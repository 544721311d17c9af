"""`Node`: one immutable, hash-consed operation in the IR.

`Node(op, inputs, arg, dtype, shape)` is built only through `node(...)`, which
returns the existing object when an identical node is alive: two nodes built the
same way are the same object, so common subexpressions are shared for free and
node identity can key dictionaries. A Node holds no callables and no data, so a
graph of them is hashable and printable.

Shapes and dtypes are inferred by one rule per Op (`infer`), unless given.
"""

from __future__ import annotations

import weakref
from math import prod

import numpy as np

from . import dtypes as dt
from .ops import BINARY, COMPARISON, REDUCE, UNARY, Op

__all__ = ["Node", "Param", "node", "const", "infer", "live_nodes", "pin"]


class Node:
    __slots__ = ("op", "inputs", "arg", "dtype", "shape", "__weakref__")

    op: Op
    inputs: tuple[Node, ...]
    arg: object
    dtype: dt.DType
    shape: tuple[int, ...]

    def __setattr__(self, name, value):
        raise AttributeError("Node is immutable")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return prod(self.shape)

    def __repr__(self) -> str:
        arg = "" if self.arg is None else f" {self.arg!r}"
        shape = ",".join(map(str, self.shape))
        return f"<Node {self.op.name}{arg} : {self.dtype.short}[{shape}] at {id(self):#x}>"

    def __reduce__(self):
        raise TypeError("Nodes are interned and cannot be pickled; pickle a Graph's text form")


class Param:
    """The arg of a CONST node whose value is the `index`-th runtime parameter of a
    cached program (runtime/cache.py): the node stands for a Python number that is
    bound at each call, so it has no value while compiling.

    NOTE: it equals no number (identity rules that look for 0 or 1 never match it)
    and has no truth value (a rule that would branch on it raises instead)."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __eq__(self, other) -> bool:
        return type(other) is Param and other.index == self.index

    def __hash__(self) -> int:
        return hash((Param, self.index))

    def __repr__(self) -> str:
        return f"param({self.index})"

    def __bool__(self):
        raise TypeError("a runtime parameter has no value while compiling")


class _Ref(weakref.ref):
    """A weak reference to a Node that remembers the Node's key in the table, and
    whatever `pin` keeps alive for as long as the Node lives."""

    __slots__ = ("key", "pin")


# key -> _Ref; a dying Node's entry goes with it (unless the key was reused since)
_REFS: dict = {}
_set = object.__setattr__


def _gone(ref: _Ref) -> None:
    key = ref.key
    if _REFS.get(key) is ref:
        del _REFS[key]


def node(op: Op, inputs: tuple[Node, ...] = (), arg=None, dtype: dt.DType | None = None,
         shape: tuple[int, ...] | None = None) -> Node:
    """The unique Node for this (op, inputs, arg, dtype, shape)."""
    if dtype is None or shape is None:
        idt, ishape = infer(op, inputs, arg)
        dtype = dtype or idt
        shape = ishape if shape is None else shape
    # NOTE: CONST args are keyed by repr so that -0.0 and 0.0 (equal, same hash)
    # stay distinct nodes, and NaN (unequal to itself) is shared.
    key = (op, inputs, repr(arg) if op is Op.CONST else arg, dtype, shape)
    ref = _REFS.get(key)
    if ref is not None:
        n = ref()
        if n is not None:
            return n
    n = object.__new__(Node)
    _set(n, "op", op)
    _set(n, "inputs", inputs)
    _set(n, "arg", arg)
    _set(n, "dtype", dtype)
    _set(n, "shape", shape)
    ref = _Ref(n, _gone)
    ref.key = key
    _REFS[key] = ref
    return n


# Recently built constants, held strongly: a training step builds the same few
# each time, and a constant holds no data. Cleared when it grows past its bound.
_RECENT: dict = {}
_RECENT_MAX = 1024


def pin(n: Node, obj) -> None:
    """Keep `obj` alive for as long as `n` lives (a BUFFER node pins its buffer)."""
    _REFS[(n.op, n.inputs, repr(n.arg) if n.op is Op.CONST else n.arg, n.dtype, n.shape)].pin = obj


def const(value, dtype: dt.DType, shape: tuple[int, ...] = ()) -> Node:
    """A constant of `shape`, every element `value` cast to `dtype`."""
    # NOTE: only Python numbers, and no float zero: -0.0 equals 0.0 (and NaN is
    # never stored), so any value equal to a key gives the node the key gave.
    kind = type(value)
    key = None
    if (kind is float and value) or kind is int or kind is bool:
        key = (value, dtype, shape)
        try:
            n = _RECENT.get(key)
        except TypeError:  # an unhashable shape: the general path says what is wrong
            n = key = None
        if n is not None:
            return n
    n = _const(value, dtype, shape)
    if key is not None and value == value:
        if len(_RECENT) >= _RECENT_MAX:
            _RECENT.clear()
        _RECENT[key] = n
    return n


def _const(value, dtype: dt.DType, shape) -> Node:
    if type(value) is Param:
        return node(Op.CONST, (), value, dtype, tuple(shape))
    if dtype.is_bool:
        value = bool(value)
    elif dtype.is_integer:
        # NOTE: a float goes through NumPy's cast (NaN gives INT_MIN, as a tensor cast)
        value = int(value) if not isinstance(value, float) else dt.cast_scalar(
            value, dt.float64, dtype)
        info = np.iinfo(dtype.np)
        if not info.min <= value <= info.max:  # wrap, as integer arithmetic does
            value = int(np.array(value & 0xFFFFFFFFFFFFFFFF, np.uint64).astype(dtype.np))
    else:
        value = float(value)
    return node(Op.CONST, (), value, dtype, tuple(shape))


def live_nodes() -> int:
    """How many Nodes are alive, not counting the constants kept for reuse (tests use
    it to check that graphs are released)."""
    return len(_REFS) - len(_RECENT)


# ---------------------------------------------------------------------------
# shape and dtype inference: one rule per Op

def _same(inputs, arg):
    return inputs[0].dtype, inputs[0].shape


def _binary(inputs, arg):
    a, b = inputs
    if a.shape != b.shape:
        raise ValueError(f"binary op on shapes {a.shape} and {b.shape}: broadcast first")
    return a.dtype, a.shape


def _comparison(inputs, arg):
    return dt.bool_, _binary(inputs, arg)[1]


def _where(inputs, arg):
    c, a, b = inputs
    if not (c.shape == a.shape == b.shape):
        raise ValueError(f"where on shapes {c.shape}, {a.shape}, {b.shape}: broadcast first")
    return a.dtype, a.shape


def _reshape(inputs, arg):
    if prod(arg) != inputs[0].numel:
        raise ValueError(f"cannot reshape {inputs[0].shape} to {arg}")
    return inputs[0].dtype, tuple(arg)


def _permute(inputs, arg):
    return inputs[0].dtype, tuple(inputs[0].shape[i] for i in arg)


def _expand(inputs, arg):
    return inputs[0].dtype, tuple(arg)


def _slice(inputs, arg):
    return inputs[0].dtype, tuple(max(0, -(-(stop - start) // step))
                                  for start, stop, step in arg)


def _as_strided(inputs, arg):
    return inputs[0].dtype, arg.shape


def _write(inputs, arg):
    return inputs[0].dtype, inputs[0].shape


def _reduce(inputs, arg):
    x = inputs[0]
    return x.dtype, tuple(1 if i in arg else s for i, s in enumerate(x.shape))


def _matmul(inputs, arg):
    a, b = inputs
    if a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul of {a.shape} and {b.shape}")
    return a.dtype, a.shape[:-1] + b.shape[-1:]


def _take(inputs, arg):
    x, idx = inputs
    return x.dtype, x.shape[:arg] + idx.shape + x.shape[arg + 1:]


def _scatter(inputs, arg):
    return inputs[0].dtype, inputs[0].shape


def _argsort(inputs, arg):
    return dt.int64, inputs[0].shape


def _source(inputs, arg):
    raise ValueError("source nodes need an explicit dtype and shape")


INFER = {op: _same for op in UNARY}
INFER.update({op: _binary for op in BINARY - COMPARISON})
INFER.update({op: _comparison for op in COMPARISON})
INFER.update({op: _reduce for op in REDUCE})
INFER.update({
    Op.BUFFER: _source, Op.CONST: _source, Op.RAND: _source, Op.ARANGE: _source,
    Op.WHERE: _where, Op.RESHAPE: _reshape, Op.PERMUTE: _permute, Op.EXPAND: _expand,
    Op.SLICE: _slice, Op.FLIP: _same, Op.AS_STRIDED: _as_strided, Op.WRITE: _write,
    Op.MATMUL: _matmul, Op.TAKE: _take, Op.SCATTER: _scatter, Op.SCATTER_ADD: _scatter,
    Op.ARGSORT: _argsort, Op.CUMSUM: _same, Op.SCAN: _same,
    Op.SCATTER_REDUCE: _scatter,
})


def infer(op: Op, inputs: tuple[Node, ...], arg) -> tuple[dt.DType, tuple[int, ...]]:
    return INFER[op](inputs, arg)
