"""Running reductions, selections and triangles: cumprod, cummax, cummin,
logcumsumexp, topk, kthvalue, tril, triu.

cumprod and logcumsumexp are one SCAN primitive each (its VJP is PyTorch's formula).
cummax/cummin find their indices from a max/min SCAN and gather their values by
index, so the gradient is PyTorch's scatter-add of g at the indices. topk and
kthvalue gather by the indices of a stable sort. tril/triu are a `where` over a mask
built from two ARANGEs.
"""

from __future__ import annotations

import sys

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, node
from ..ir.ops import Op
from .elementwise import _TORCH_KERNEL_NAME, _apply
from .indexing import take_along
from .inplace import _make_inplace
from .records import result
from .reductions import _sum_dtype, argsort, values_indices
from .tensor import Tensor, _dim, wrap_node

__all__ = ["cumprod", "cummax", "cummin", "logcumsumexp", "topk", "kthvalue", "tril", "triu"]


def cumprod(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running product along `dim` (integers and bools accumulate as int64).

    The gradient is PyTorch's, exact where the input holds zeros.

    >>> em.cumprod(em.tensor([1.0, 2.0, 3.0, 0.5]), 0)
    tensor([1., 2., 6., 3.])
    """
    axis = _dim(dim, input.ndim)
    x = input.node
    xc = b.cast(x, _sum_dtype(input, dtype))
    if xc.ndim == 0:
        return result(xc, (input,), "CumprodBackward0", (x,))
    return result(node(Op.SCAN, (xc,), (axis, "prod")), (input,), "CumprodBackward0", (x,))


def logcumsumexp(input: Tensor, dim: int) -> Tensor:
    """log(cumsum(exp(input))) along `dim`, computed without overflow; floats only.

    >>> em.logcumsumexp(em.tensor([0.0, 0.0, 100.0]), 0)
    tensor([  0.0000,   0.6931, 100.0000])
    """
    axis = _dim(dim, input.ndim)
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f'"logcumsumexp_out_cpu" not implemented for '
                                  f"'{_TORCH_KERNEL_NAME[input.dtype.name]}'")
    x = input.node
    if x.ndim == 0:
        return result(b.reshape(x, ()), (input,), "LogcumsumexpBackward0", (x,))
    return result(node(Op.SCAN, (x,), (axis, "logsumexp")), (input,),
                  "LogcumsumexpBackward0", (x,))


def _running_extreme(input: Tensor, dim: int, kind: str, name: str):
    axis = _dim(dim, input.ndim)
    if input.ndim == 0:
        return values_indices(input.clone(), wrap_node(b.zeros(dt.int64, ()),
                                                       input._storage.device))
    x = input.node
    running = node(Op.SCAN, (x,), (axis, kind))
    # NOTE: PyTorch's rule: an element equal to the running extreme (or a NaN) takes
    # the index, so the latest of equal elements wins and a NaN holds on until the next
    hit = node(Op.EQ, (x, running))
    if input.dtype.is_floating_point:
        hit = node(Op.OR, (hit, node(Op.NE, (x, x))))
    size = input.shape[axis]
    pos = b.reshape(node(Op.ARANGE, (), (0, 1), dt.int64, (size,)),
                    tuple(size if i == axis else 1 for i in range(input.ndim)))
    marks = b.where(hit, b.expand_to(pos, x.shape), b.zeros(dt.int64, x.shape))
    indices = wrap_node(node(Op.SCAN, (marks,), (axis, "max")), input._storage.device)
    values = take_along(input, indices, axis)
    if values._grad_fn is not None:
        values._grad_fn._name = name
    return values_indices(values, indices)


def cummax(input: Tensor, dim: int):
    """(values, indices): the running maximum along `dim` and where it was found.

    As PyTorch: of equal elements the latest one's index is taken, and NaN propagates
    (with the index of the latest NaN). The gradient flows to the indexed elements.

    >>> em.cummax(em.tensor([1, 3, 2, 3]), 0)
    values_indices(values=tensor([1, 3, 3, 3]), indices=tensor([0, 1, 1, 3]))
    """
    return _running_extreme(input, dim, "max", "CummaxBackward0")


def cummin(input: Tensor, dim: int):
    """(values, indices): the running minimum along `dim` and where it was found
    (ties and NaN as `cummax`).

    >>> em.cummin(em.tensor([3, 1, 2, 1]), 0)
    values_indices(values=tensor([3, 1, 1, 1]), indices=tensor([0, 1, 1, 3]))
    """
    return _running_extreme(input, dim, "min", "CumminBackward0")


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """(values, indices) of the `k` largest (or smallest) elements along `dim`.

    The result is sorted (`sorted=False` is accepted and gives the same order); equal
    elements come in their order in input; NaN counts as the largest value.

    >>> em.topk(em.tensor([1.0, 4.0, 2.0, 3.0]), 2)
    values_indices(values=tensor([4., 3.]), indices=tensor([1, 3]))
    """
    axis = _dim(dim, input.ndim)
    size = input.shape[axis] if input.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError("selected index k out of range")
    if input.ndim == 0:
        return _select(input.reshape(1), argsort(input.reshape(1), 0, largest), 0, k,
                       "TopkBackward0", () if k == 1 else None)
    order = argsort(input, axis, descending=largest)
    return _select(input, order, axis, k, "TopkBackward0", None)


def _select(input: Tensor, order: Tensor, axis: int, k: int, name: str, shape):
    idx = wrap_node(b.reshape(node(Op.SLICE, (order.node,), tuple(
        (0, k if i == axis else s, 1) for i, s in enumerate(order.shape))), tuple(
        k if i == axis else s for i, s in enumerate(order.shape))), input._storage.device)
    values = take_along(input, idx, axis)
    if values._grad_fn is not None:
        values._grad_fn._name = name
    if shape is not None:
        values, idx = values.reshape(shape), idx.reshape(shape)
    return values_indices(values, idx)


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False):
    """(values, indices) of the `k`-th smallest element (counting from 1) along `dim`.

    NaN counts as the largest value; of equal elements the first in input's order is
    taken.

    >>> em.kthvalue(em.tensor([3.0, 1.0, 2.0]), 2)
    values_indices(values=tensor(2.), indices=tensor(2))
    """
    axis = _dim(dim, input.ndim)
    size = input.shape[axis] if input.ndim else 1
    if not 1 <= k <= size:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {axis}")
    if input.ndim == 0:
        flat = input.reshape(1)
        return _select(flat, argsort(flat, 0), 0, 1, "KthvalueBackward0", ())
    order = argsort(input, axis)
    shape = tuple(1 if i == axis else s for i, s in enumerate(input.shape)) if keepdim else \
        tuple(s for i, s in enumerate(input.shape) if i != axis)
    out = _select(input, _narrow(order, axis, k - 1), axis, 1, "KthvalueBackward0", shape)
    return out


def _narrow(t: Tensor, axis: int, start: int) -> Tensor:
    """The one position `start` of t along axis (a fresh int64 tensor)."""
    return wrap_node(node(Op.SLICE, (t.node,), tuple(
        (start, start + 1, 1) if i == axis else (0, s, 1) for i, s in enumerate(t.shape))),
          t._storage.device)


def _triangle(input: Tensor, diagonal: int, lower: bool, name: str) -> Tensor:
    if input.ndim < 2:
        raise RuntimeError(f"{name.lower()}: input tensor must have at least 2 dimensions")
    m, n = input.shape[-2:]

    def build(x: Node) -> Node:
        rows = b.reshape(node(Op.ARANGE, (), (0, 1), dt.int64, (m,)), (m, 1))
        cols = b.reshape(node(Op.ARANGE, (), (0, 1), dt.int64, (n,)), (1, n))
        offset = node(Op.SUB, (b.expand_to(cols, (m, n)), b.expand_to(rows, (m, n))))
        k = b.full(diagonal, dt.int64, (m, n))
        keep = node(Op.LE, (offset, k) if lower else (k, offset))
        return b.where(b.expand_to(keep, x.shape), x, b.zeros(x.dtype, x.shape))
    # NOTE: the mask is built in row-major order: so is the result (as PyTorch's)
    return _apply(Op.WHERE, (input,), name + "Backward0", build=build, keep_layout=False)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (a batch of matrices): elements with
    column - row <= diagonal are kept, the others are 0.

    >>> em.tril(em.ones(3, 3))
    tensor([[1., 0., 0.],
            [1., 1., 0.],
            [1., 1., 1.]])
    """
    return _triangle(input, diagonal, True, "Tril")


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (a batch of matrices): elements with
    column - row >= diagonal are kept, the others are 0.

    >>> em.triu(em.ones(2, 3), 1)
    tensor([[0., 1., 1.],
            [0., 0., 1.]])
    """
    return _triangle(input, diagonal, False, "Triu")


# Tensor methods: `t.cumprod(0)`, `t.topk(3)`, `t.tril_()`, ...
for _name in __all__:
    setattr(Tensor, _name, globals()[_name])
for _name in ("tril", "triu"):
    setattr(Tensor, _name + "_", _make_inplace(_name, sys.modules[__name__]))
