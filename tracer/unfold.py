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
    count = (length - size) // step + 1
    shape = tuple(x.shape)
    if x.ndim == 0:
        return make_view(x, View((size,), (1,), x._view.offset),
                         b.reshape(x.node, (size,)), "UnfoldBackward0")
    st = x._view.strides
    new_shape = shape[:d] + (count,) + shape[d + 1:] + (size,)
    v = View(new_shape, st[:d] + (st[d] * step,) + st[d + 1:] + (st[d],), x._view.offset)
    # the node reads the same elements from a contiguous copy of x's value
    cs = View.contiguous(shape).strides
    nv = View(new_shape, cs[:d] + (cs[d] * step,) + cs[d + 1:] + (cs[d],), 0)
    return make_view(x, v, node(Op.AS_STRIDED, (b.flat(x.node),), nv, x.dtype, nv.shape),
                     "UnfoldBackward0")


Tensor.unfold = unfold
