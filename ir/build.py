"""Small node builders shared by tracer/ (composite ops) and passes/ (VJP rules).

Each returns a Node; none validates user input (tracer/ does that before it
calls them), and each avoids building a node that would be an identity.
"""

from __future__ import annotations

from . import dtypes as dt
from .node import Node, const, node
from .ops import Op
from .view import View

__all__ = [
    "full", "zeros", "ones", "like", "cast", "reshape", "flat", "expand_to",
    "sum_to", "reduce", "permute", "binary", "where", "write", "as_strided",
]


def full(value, dtype: dt.DType, shape) -> Node:
    return const(value, dtype, tuple(shape))


def zeros(dtype: dt.DType, shape) -> Node:
    return const(0, dtype, tuple(shape))


def ones(dtype: dt.DType, shape) -> Node:
    return const(1, dtype, tuple(shape))


def like(x: Node, value) -> Node:
    """A constant with x's dtype and shape."""
    return const(value, x.dtype, x.shape)


def cast(x: Node, dtype: dt.DType) -> Node:
    if x.dtype is dtype:
        return x
    if x.op is Op.CONST:
        return const(dt.cast_scalar(x.arg, x.dtype, dtype), dtype, x.shape)
    return node(Op.CAST, (x,), None, dtype, x.shape)


def reshape(x: Node, shape) -> Node:
    shape = tuple(shape)
    if x.shape == shape:
        return x
    if x.op is Op.CONST:
        return const(x.arg, x.dtype, shape)
    return node(Op.RESHAPE, (x,), shape, x.dtype, shape)


def flat(x: Node) -> Node:
    return reshape(x, (x.numel,))


def permute(x: Node, order) -> Node:
    """x with its dims in `order` (dim i of the result is dim order[i] of x); a move
    of size-1 dims only is a reshape, a constant is rebuilt in the new shape."""
    order = tuple(order)
    if order == tuple(range(x.ndim)):
        return x
    shape = tuple(x.shape[d] for d in order)
    if x.op is Op.CONST:
        return const(x.arg, x.dtype, shape)
    if [d for d in order if x.shape[d] != 1] == [d for d in range(x.ndim) if x.shape[d] != 1]:
        return reshape(x, shape)
    return node(Op.PERMUTE, (x,), order)


def expand_to(x: Node, shape) -> Node:
    """Broadcast x to `shape` (x may have fewer dims: ones are prepended)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    if x.op is Op.CONST:
        return const(x.arg, x.dtype, shape)
    if x.ndim < len(shape):
        x = reshape(x, (1,) * (len(shape) - x.ndim) + x.shape)
        if x.shape == shape:
            return x
    return node(Op.EXPAND, (x,), shape, x.dtype, shape)



def reduce(op: Op, x: Node, axes) -> Node:
    """A keepdim reduction over `axes` (skipped when they are all of size 1)."""
    axes = tuple(sorted(a for a in axes if x.shape[a] != 1))
    if not axes:
        return x
    return node(op, (x,), axes)


def sum_to(g: Node, shape) -> Node:
    """Undo broadcasting: sum g down to `shape` (the inverse of expand_to)."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and g.shape[lead + i] != 1)
    out = node(Op.REDUCE_SUM, (g,), axes) if axes else g
    return reshape(out, shape)


def binary(op: Op, a: Node, b: Node) -> Node:
    return node(op, (a, b))


def where(c: Node, a: Node, b: Node) -> Node:
    return node(Op.WHERE, (c, a, b))


def as_strided(x: Node, view: View) -> Node:
    """The elements of x (read in row-major order, as a flat array) that `view` addresses."""
    if view.shape == x.shape and view.offset == 0 and view.is_contiguous():
        return x
    if view.is_contiguous() and view.offset == 0 and view.numel == x.numel:
        return reshape(x, view.shape)
    x = flat(x)
    return node(Op.AS_STRIDED, (x,), view, x.dtype, view.shape)


def write(dest: Node, src: Node, view: View) -> Node:
    """dest (read in row-major order) with the elements `view` addresses replaced by src.

    A write of every element is src itself, cast and reshaped to dest's shape;
    otherwise the result is flat.
    """
    if view.numel == 0:
        return dest
    if view.offset == 0 and view.numel == dest.numel and view.is_contiguous():
        return reshape(cast(src, dest.dtype), dest.shape)
    dest = flat(dest)
    return node(Op.WRITE, (dest, cast(src, dest.dtype)), view)
