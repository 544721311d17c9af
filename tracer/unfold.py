"""`Tensor.unfold`: sliding windows of one dim, as a view (PyTorch's semantics)."""

from __future__ import annotations

from ..ir import build as b
from ..ir.node import node
from ..ir.ops import Op
from ..ir.view import View
from .shape import make_view
from .tensor import Tensor, _dim


def unfold(x: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """A view of every slice of length `size` of dim `dimension`, `step` apart.

    The windows replace `dimension` (their count, `(x.size(dimension) - size) // step + 1`)
    and their elements form a new last dim of length `size`, as `torch.Tensor.unfold`.

    Args:
        dimension (int): the dim to slide along.
        size (int): the length of each window.
        step (int): the distance between the starts of neighbouring windows.

    >>> em.arange(7.).unfold(0, 3, 2)
    tensor([[0., 1., 2.],
            [2., 3., 4.],
            [4., 5., 6.]])
    """
    d = _dim(dimension, max(x.ndim, 1))
    length = x.shape[d] if x.ndim else 1
    if size > length:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {length} but size "
                           f"is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    if size < 0:
        raise RuntimeError(f"size is {size} but must be >= 0")
    if x.ndim == 0:
        return make_view(x, View((size,), (1,), x._view.offset),
                         b.reshape(x.node, (size,)), "UnfoldBackward0")
    return windows(x, (d,), (size,), (step,), (1,))


def windows(x: Tensor, dims: tuple, sizes: tuple, steps: tuple, dilations: tuple) -> Tensor:
    """Sliding windows over several dims at once, as one strided view (one IR node).

    Each dim in `dims` is replaced by its window count and a trailing dim of length
    `sizes[i]` is appended (in the order of `dims`), its elements `dilations[i]` apart:
    `x.unfold(2, kh, sh).unfold(3, kw, sw)` for dilation 1, but one view, so its gradient
    is one scatter rather than one per dim. Used by ember.nn's convolutions and pooling.
    """
    shape = tuple(x.shape)
    counts = tuple((shape[d] - dl * (k - 1) - 1) // st + 1
                   for d, k, st, dl in zip(dims, sizes, steps, dilations))

    def strided(strides):
        out = list(strides)
        for d, st, c in zip(dims, steps, counts):
            out[d] = strides[d] * st
        new_shape = list(shape)
        for d, c in zip(dims, counts):
            new_shape[d] = c
        return (tuple(new_shape) + tuple(sizes),
                tuple(out) + tuple(strides[d] * dl for d, dl in zip(dims, dilations)))

    vshape, vstrides = strided(x._view.strides)
    v = View(vshape, vstrides, x._view.offset)
    # the node reads the same elements from a contiguous copy of x's value
    _, cstrides = strided(View.contiguous(shape).strides)
    nv = View(vshape, cstrides, 0)
    return make_view(x, v, node(Op.AS_STRIDED, (b.flat(x.node),), nv, x.dtype, nv.shape),
                     "UnfoldBackward0" if len(dims) == 1 else "AsStridedBackward0")


Tensor.unfold = unfold
