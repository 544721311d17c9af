"""Scatters: scatter, scatter_add, scatter_reduce, index_add, index_put.

Each writes `src` into a copy of `input` at positions an index names, built on the
SCATTER / SCATTER_ADD primitives over flat row-major positions (and SCATTER_REDUCE for
prod, amax and amin), so the gradients are the primitives' (PyTorch's formulas).
The in-place forms (`scatter_`, ...) are these through `inplace_op`.
"""

from __future__ import annotations

import sys

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, node
from ..ir.ops import Op
from .elementwise import as_operand, broadcast_shapes
from .indexing import _checked, getitem, linear_index
from .inplace import _make_inplace, record_names
from .records import result
from .tensor import Tensor, _dim, wrap_node

__all__ = ["scatter", "scatter_add", "scatter_reduce", "index_add", "index_put"]

_REDUCES = ("sum", "prod", "mean", "amax", "amin")


def _positions(name: str, input: Tensor, dim: int, index: Tensor, src) -> tuple[Node, int]:
    """(flat positions in input of every element of index, the normalised dim), after
    PyTorch's checks of index against input (and src)."""
    d = _dim(dim, input.ndim)
    if index.dtype not in (dt.int32, dt.int64):
        raise RuntimeError(f"{name}(): Expected dtype int32/int64 for index")
    if index.ndim != input.ndim and index.numel() and input.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as self "
                           "tensor")
    if isinstance(src, Tensor) and src.ndim != index.ndim and index.numel():
        raise RuntimeError("Index tensor must have the same number of dimensions as src "
                           "tensor")
    for i in range(index.ndim):
        over_self = i != d and index.shape[i] > input.shape[i]
        over_src = isinstance(src, Tensor) and index.shape[i] > src.shape[i]
        if over_self or over_src:
            got = f" and to be no larger size than src {list(src.shape)}" \
                if isinstance(src, Tensor) else ""
            raise RuntimeError(f"Expected index {list(index.shape)} to be no larger than self "
                               f"{list(input.shape)} apart from dimension {d}{got}")
    shape = tuple(index.shape)
    coords = []
    for i, size in enumerate(shape):
        if i == d:
            coords.append(index.node)
        else:
            r = node(Op.ARANGE, (), (0, 1), dt.int64, (size,))
            coords.append(b.reshape(r, tuple(size if j == i else 1 for j in range(len(shape)))))
    sizes = list(input.shape) if input.ndim else [1]
    if not shape:
        coords, shape = [index.node], ()
    lin = linear_index(coords, sizes, shape)
    _checked(lin, [index], [sizes[d]], [d], RuntimeError)
    return b.flat(lin), d


def _source(src, index: Tensor, dtype: dt.DType) -> Node:
    """src's elements at index's positions (the leading block of src), flat, as dtype."""
    if not isinstance(src, Tensor):
        return b.full(src, dtype, (index.numel(),))
    n = src.node
    if tuple(src.shape) != tuple(index.shape):
        n = node(Op.SLICE, (n,), tuple((0, s, 1) for s in index.shape))
    return b.flat(b.cast(n, dtype))


def _finish(out: Node, input: Tensor, name: str, tensors, raws) -> Tensor:
    return result(b.reshape(out, tuple(input.shape)), tensors, name, raws, input._storage.device)


def scatter(input: Tensor, dim: int, index: Tensor, src=None, value=None, *,
            reduce: str | None = None) -> Tensor:
    """A copy of `input` with `src` (a tensor, or a number `value`) written at the
    positions `index` names along `dim`: `out[i][index[i][j]] = src[i][j]` for dim=1.

    `reduce="add"` or `"multiply"` combines with what is there instead. Where index
    repeats a position, which write wins is unspecified (as in PyTorch).

    >>> em.scatter(em.zeros(2, 3), 1, em.tensor([[2], [0]]), em.tensor([[5.0], [6.0]]))
    tensor([[0., 0., 5.],
            [6., 0., 0.]])
    """
    src = value if src is None else src
    if src is None:
        raise TypeError("scatter() missing required argument 'src' or 'value'")
    src = as_operand(src, "src")
    if reduce is not None:
        kinds = {"add": "sum", "multiply": "prod"}
        if reduce not in kinds:
            raise RuntimeError("reduce argument must be either add or multiply.")
        return _reduce(input, dim, index, src, kinds[reduce], True, "ScatterReduceBackward0")
    pos, _ = _positions("scatter", input, dim, index, src)
    raw = input.node
    tensors = (input, src) if isinstance(src, Tensor) else (input,)
    raws = (raw, src.node) if isinstance(src, Tensor) else (raw,)
    out = node(Op.SCATTER, (b.flat(raw), pos, _source(src, index, input.dtype)), 0)
    name = "ScatterBackward0" if isinstance(src, Tensor) else "ScatterBackward1"
    return _finish(out, input, name, tensors, raws)


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """A copy of `input` with `src` added at the positions `index` names along `dim`
    (repeated positions accumulate): `out[i][index[i][j]] += src[i][j]` for dim=1.

    >>> em.scatter_add(em.zeros(4), 0, em.tensor([0, 2, 0]), em.tensor([1.0, 2.0, 3.0]))
    tensor([4., 0., 2., 0.])
    """
    return _reduce(input, dim, index, src, "sum", True, "ScatterAddBackward0")


def scatter_reduce(input: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                   include_self: bool = True) -> Tensor:
    """A copy of `input` where each position `index` names along `dim` holds the
    reduction ("sum", "prod", "mean", "amax" or "amin") of the `src` elements sent
    there, and of input's own value with `include_self`. Untouched positions keep input's.

    >>> em.scatter_reduce(em.zeros(3), 0, em.tensor([0, 0, 2]), em.tensor([1.0, 3.0, 5.0]),
    ...                   "amax", include_self=False)
    tensor([3., 0., 5.])
    """
    reduce = {"max": "amax", "min": "amin"}.get(reduce, reduce)  # NOTE: PyTorch's aliases
    if reduce not in _REDUCES:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got "
                           f"{reduce}")
    return _reduce(input, dim, index, src, reduce, include_self, "ScatterReduceBackward0")


def _reduce(input: Tensor, dim: int, index: Tensor, src, kind: str, include_self: bool,
            name: str) -> Tensor:
    if isinstance(src, Tensor) and src.dtype is not input.dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    pos, _ = _positions("scatter", input, dim, index, src)
    raw = input.node
    dest = b.flat(raw)
    vals = _source(src, index, input.dtype)
    if kind in ("sum", "mean"):
        if not include_self:
            dest = node(Op.SCATTER, (dest, pos, b.zeros(input.dtype, pos.shape)), 0)
        out = node(Op.SCATTER_ADD, (dest, pos, vals), 0)
    else:
        out = node(Op.SCATTER_REDUCE, (dest, pos, vals), (0, kind, bool(include_self)))
    if kind == "mean":
        ones = b.ones(input.dtype, pos.shape)
        start = b.full(1 if include_self else 0, input.dtype, dest.shape)
        count = node(Op.SCATTER_ADD, (start, pos, ones), 0)
        safe = b.where(node(Op.EQ, (count, b.like(count, 0))), b.like(count, 1), count)
        op = Op.DIV if input.dtype.is_floating_point else Op.FLOORDIV
        out = node(op, (out, safe))
    tensors = (input, src) if isinstance(src, Tensor) else (input,)
    raws = (raw, src.node) if isinstance(src, Tensor) else (raw,)
    return _finish(out, input, name, tensors, raws)


def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """A copy of `input` with `alpha * source` added at the entries `index` (1-D) names
    along `dim` (repeated entries accumulate).

    >>> em.index_add(em.zeros(3, 2), 0, em.tensor([0, 2, 0]), em.ones(3, 2))
    tensor([[2., 2.],
            [0., 0.],
            [1., 1.]])
    """
    d = _dim(dim, input.ndim)
    if index.ndim > 1:
        raise IndexError("index_add_(): Index is supposed to be a vector")
    if index.dtype not in (dt.int32, dt.int64):
        raise RuntimeError("index_add_(): Expected dtype int32/int64 for index")
    if source.dtype is not input.dtype:
        raise RuntimeError(f"index_add_(): self ({input.dtype}) and source ({source.dtype}) "
                           "must have the same scalar type")
    want = tuple(input.shape[:d]) + (index.numel(),) + tuple(input.shape[d + 1:])
    if source.ndim and source.shape[d] != index.numel():
        raise RuntimeError(f"index_add_(): Number of indices ({index.numel()}) should be equal "
                           f"to source.size(dim): ({source.shape[d]}), for dim: {d}")
    if input.ndim and tuple(source.shape) != want:
        raise RuntimeError(f"index_add_(): Source/destination tensor must have same slice "
                           f"shapes. Destination slice shape: {list(input.shape)} at "
                           f"dimension {d} and source slice shape: {list(source.shape)} at "
                           f"dimension {d}.")
    size = input.shape[d] if input.ndim else 1
    if index.numel() and index._storage.is_realized:
        a = index._array()
        if ((a < 0) | (a >= size)).any():
            raise IndexError("index out of range in self")
    raw, sraw = input.node, source.node
    x = raw if input.ndim else b.reshape(raw, (1,))
    idx = b.reshape(b.cast(index.node, dt.int64), (index.numel(),))
    idx = b.where(node(Op.LT, (idx, b.like(idx, 0))), node(Op.ADD, (idx, b.like(idx, size))),
                  idx)
    s = b.reshape(sraw, want if input.ndim else (index.numel(),))
    if alpha != 1:
        s = node(Op.MUL, (s, b.full(alpha, s.dtype, s.shape)))
    out = node(Op.SCATTER_ADD, (x, idx, s), d)
    return _finish(out, input, "IndexAddBackward0", (input, source), (raw, sraw))


def index_put(input: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    """A copy of `input` with `values` written at `input[indices]` (a tuple of index
    tensors, as in advanced indexing); with `accumulate`, added there instead (repeated
    positions accumulate).

    >>> em.index_put(em.zeros(3), (em.tensor([0, 0, 2]),), em.tensor(1.0), accumulate=True)
    tensor([2., 0., 1.])
    """
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"index_put(): argument 'indices' must be tuple of Tensors, not "
                        f"{type(indices).__name__}")
    numel = input.numel()
    iota = wrap_node(b.reshape(node(Op.ARANGE, (), (0, 1), dt.int64, (numel,)),
                               tuple(input.shape)), input._storage.device)
    positions = getitem(iota, tuple(indices))
    values = as_operand(values, "values")
    shape = tuple(positions.shape)
    if isinstance(values, Tensor):
        try:
            ok = broadcast_shapes(tuple(values.shape), shape) == shape
        except RuntimeError:
            ok = False
        if not ok:
            raise RuntimeError(f"shape mismatch: value tensor of shape {list(values.shape)} "
                               f"cannot be broadcast to indexing result of shape {list(shape)}")
        vals = b.flat(b.expand_to(b.cast(values.node, input.dtype), shape))
    else:
        vals = b.full(values, input.dtype, (positions.numel(),))
    raw = input.node
    op = Op.SCATTER_ADD if accumulate else Op.SCATTER
    out = node(op, (b.flat(raw), b.flat(positions.node), vals), 0)
    tensors = (input, values) if isinstance(values, Tensor) else (input,)
    raws = (raw, values.node) if isinstance(values, Tensor) else (raw,)
    return _finish(out, input, "IndexPutBackward0", tensors, raws)


# Tensor methods: `t.scatter(0, idx, src)`, `t.index_add_(0, idx, src)`, ...
for _name in __all__:
    setattr(Tensor, _name, globals()[_name])
    setattr(Tensor, _name + "_", _make_inplace(_name, sys.modules[__name__]))
record_names(scatter, 1, "ScatterBackward0", "ScatterBackward1")
