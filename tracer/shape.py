"""Shape and movement operations, and linear algebra.

View operations (view, permute, transpose, expand, squeeze, unsqueeze, narrow,
select, diagonal...) return tensors on the same storage with PyTorch's strides;
`reshape` returns a view when the strides allow and a copy otherwise. cat,
stack, split, chunk and flip build new values.
"""

from __future__ import annotations

from math import prod

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, node
from ..ir.ops import Op
from ..ir.view import View
from ..runtime.context import current
from . import elementwise
from .records import record, result
from .tensor import Tensor, _dim, _new, distinct_nodes

__all__ = ["view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute",
           "transpose", "swapaxes", "t", "expand", "expand_as", "broadcast_to", "contiguous",
           "cat", "concat", "stack", "split", "chunk", "flip", "narrow", "select", "movedim",
           "view_as", "reshape_as", "matmul", "mm", "bmm", "dot", "mv", "outer", "diagonal",
           "unbind", "tile", "repeat"]


def make_view(x: Tensor, new_view: View, n: Node, name: str) -> Tensor:
    """A tensor on x's storage read through `new_view`, whose value is node `n`."""
    out = _new(x._storage, new_view, x.dtype, x._base if x._base is not None else x)
    out._detached = x._detached
    # NOTE: views of what detach() returned share its history, not the original's
    out._cut = x if x._detached and x._cut is None else x._cut
    out._node = n
    out._node_src = x._storage.node
    out._view_meta = x._view_meta
    if not current().grad_enabled:
        if not x._detached and out._view_meta is None:
            out._view_meta = NO_GRAD_VIEW
    elif x._requires_grad:
        record(out, name, (x,), (x.node,))  # n was built from x.node
    return out


# NOTE: PyTorch refuses an in-place write that autograd records into these views (the
# history it would have to rebuild is ambiguous): views made under no_grad, the outputs
# of functions returning several views (split, chunk, unbind) and views of either.
NO_GRAD_VIEW = (
    "A view was created in no_grad mode and is being modified inplace with grad mode "
    "enabled. Given that this use case is ambiguous and error-prone, it is forbidden. You "
    "can clarify your code by moving both the view and the inplace either both inside the "
    "no_grad block (if you don't want the inplace to be tracked) or both outside (if you "
    "want the inplace to be tracked).")


def _multi_output(views: tuple, name: str) -> tuple:
    """Mark the outputs of a function returning several views (see NO_GRAD_VIEW)."""
    for i, v in enumerate(views):
        if v._view_meta is None and not v._detached:
            v._view_meta = (
                f"Output {i} of {name} is a view and is being modified inplace. This view "
                "is the output of a function that returns multiple views. Such functions "
                "do not allow the output views to be modified inplace. You should replace "
                "the inplace operation by an out-of-place one.")
    return views


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _infer_size(shape: tuple, numel: int) -> tuple:
    shape = list(shape)
    holes = [i for i, s in enumerate(shape) if s == -1]
    if len(holes) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for s in shape:
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s}")
    known = prod(s for s in shape if s != -1)
    if holes:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape[holes[0]] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(shape)


def view(x: Tensor, *shape) -> Tensor:
    """The same data with another shape; raises when the strides cannot express it."""
    if len(shape) == 1 and isinstance(shape[0], (dt.DType, str)):
        raise NotImplementedError("view(dtype) reinterpretation is not supported")
    shape = _infer_size(_shape_arg(shape), x.numel())
    v = x._view.reshape(shape)
    if v is None:
        raise RuntimeError(
            f"view size is not compatible with input tensor's size and stride (at least one "
            f"dimension spans across two contiguous subspaces): input of shape "
            f"{list(x.shape)} with strides {list(x.stride())} cannot be viewed as "
            f"{list(shape)}. Use .reshape(...) instead.")
    return make_view(x, v, b.reshape(x.node, shape), "ViewBackward0")


def reshape(x: Tensor, *shape) -> Tensor:
    """A view when the strides allow, else a contiguous copy (as PyTorch's reshape)."""
    shape = _infer_size(_shape_arg(shape), x.numel())
    v = x._view.reshape(shape)
    if v is not None:
        return make_view(x, v, b.reshape(x.node, shape), "ViewBackward0")
    raw = x.node
    return result(b.reshape(raw, shape), (x,), "UnsafeViewBackward0", (raw,))


def view_as(x: Tensor, other: Tensor) -> Tensor:
    """`x.view(other.shape)`: a view of `x` with `other`'s shape (no copy).

    Raises if `x`'s strides cannot be viewed with that shape; `reshape_as` copies then.

    >>> em.arange(6).view_as(em.zeros(2, 3)).shape
    ember.Size([2, 3])
    """
    return view(x, tuple(other.shape))


def reshape_as(x: Tensor, other: Tensor) -> Tensor:
    """`x.reshape(other.shape)`: `x` with `other`'s shape, a view where the strides allow,
    else a copy.

    >>> em.arange(6).reshape_as(em.zeros(3, 2)).shape
    ember.Size([3, 2])
    """
    return reshape(x, tuple(other.shape))


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims `start_dim` to `end_dim` (all by default) into one.

    Args:
        x (Tensor): the tensor to flatten.
        start_dim (int): the first dim to merge.
        end_dim (int): the last dim to merge (inclusive).

    A view where the strides allow, else a copy (as `reshape`); a 0-dim tensor gives
    shape `[1]`, and `x` itself comes back when there is nothing to merge.

    >>> em.flatten(em.zeros(2, 3, 4), 1).shape
    ember.Size([2, 12])
    """
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = _dim(start_dim, x.ndim), _dim(end_dim, x.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return x  # as torch: nothing to merge (a reshape could change size-1 strides)
    shape = tuple(x.shape[:s]) + (prod(x.shape[s:e + 1]),) + tuple(x.shape[e + 1:])
    return reshape(x, shape)


def unflatten(x: Tensor, dim: int, sizes) -> Tensor:
    """Split dim `dim` into `sizes` (one may be -1); a view when the strides allow."""
    d = _dim(dim, x.ndim)
    try:
        sizes = _infer_size(tuple(sizes), x.shape[d])
    except RuntimeError as e:
        if "inferred" in str(e):
            raise
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {dim} ({x.shape[d]}) in the input tensor") from None
    return reshape(x, tuple(x.shape[:d]) + sizes + tuple(x.shape[d + 1:]))


def squeeze(x: Tensor, dim=None) -> Tensor:
    """Drop dims of size 1 (all, or those in `dim`)."""
    if dim is None:
        dims = tuple(i for i, s in enumerate(x.shape) if s == 1)
        name = "SqueezeBackward0"
    else:
        ds = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = tuple(d for d in (_dim(d, x.ndim) for d in ds) if x.ndim and x.shape[d] == 1)
        name = "SqueezeBackward1"
    v = x._view.squeeze(dims)
    return make_view(x, v, b.reshape(x.node, v.shape), name)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """A view of `x` with a new dim of size 1 at position `dim`.

    `dim` ranges over `[-x.ndim - 1, x.ndim]`; negative values count from the end of the result.

    >>> em.unsqueeze(em.tensor([1, 2]), 0)
    tensor([[1, 2]])
    """
    d = _dim(dim, x.ndim + 1)
    v = x._view.unsqueeze(d)
    return make_view(x, v, b.reshape(x.node, v.shape), "UnsqueezeBackward0")


def permute(x: Tensor, *dims) -> Tensor:
    """A view of `x` with its dims reordered: dim `i` of the result is dim `dims[i]` of `x`.

    `dims` may be given as separate ints or as one sequence and must name every dim once.

    >>> em.permute(em.zeros(2, 3, 4), 2, 0, 1).shape
    ember.Size([4, 2, 3])
    """
    dims = _shape_arg(dims)
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute(): number of dimensions in the tensor input "
                           f"does not match the length of the desired ordering of dimensions "
                           f"i.e. input.dim() = {x.ndim} is not equal to len(dims) = {len(dims)}")
    order = tuple(_dim(d, x.ndim) for d in dims)
    if len(set(order)) != len(order):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return make_view(x, x._view.permute(order), node(Op.PERMUTE, (x.node,), order),
                     "PermuteBackward0")


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """A view of `x` with dims `dim0` and `dim1` swapped.

    `em.swapaxes` is an alias of `em.transpose`. A 0-dim tensor is returned as a view.

    >>> em.transpose(em.tensor([[1, 2, 3]]), 0, 1)
    tensor([[1],
            [2],
            [3]])
    """
    if x.ndim == 0:
        return make_view(x, x._view, x.node, "TransposeBackward0")
    a, c = _dim(dim0, x.ndim), _dim(dim1, x.ndim)
    order = list(range(x.ndim))
    order[a], order[c] = order[c], order[a]
    return make_view(x, x._view.permute(order), node(Op.PERMUTE, (x.node,), tuple(order)),
                     "TransposeBackward0")


swapaxes = transpose


def t(x: Tensor) -> Tensor:
    """Transpose a matrix (vectors and scalars come back as they are)."""
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    if x.ndim < 2:
        return make_view(x, x._view, x.node, "TBackward0")
    return make_view(x, x._view.permute((1, 0)), node(Op.PERMUTE, (x.node,), (1, 0)),
                     "TBackward0")


def movedim(x: Tensor, source, destination) -> Tensor:
    """A view of `x` with dims `source` moved to positions `destination`.

    `source` and `destination` are ints or sequences of the same length; the other
    dims keep their order.

    >>> em.movedim(em.zeros(2, 3, 4), 0, -1).shape
    ember.Size([3, 4, 2])
    """
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    src = [_dim(s, x.ndim) for s in src]
    dst = [_dim(d, x.ndim) for d in dst]
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(x, *order)


def expand(x: Tensor, *sizes) -> Tensor:
    """Broadcast size-1 dims to `sizes` without copying (stride 0); -1 keeps a size."""
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError(f"expand(ember.FloatTensor{{{list(x.shape)}}}, size={list(sizes)}): "
                           "the number of sizes provided must be greater or equal to the "
                           "number of dimensions in the tensor")
    lead = len(sizes) - x.ndim
    shape = []
    for i, s in enumerate(sizes):
        old = x.shape[i - lead] if i >= lead else None
        if s == -1:
            if old is None:
                raise RuntimeError("expand: -1 is not allowed in a leading, non-existing "
                                   "dimension")
            s = old
        if old is not None and old != s and old != 1:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing "
                               f"size ({old}) at non-singleton dimension {i}.  Target sizes: "
                               f"{list(sizes)}.  Tensor sizes: {list(x.shape)}")
        shape.append(s)
    shape = tuple(shape)
    # NOTE: new leading dims get stride 0 (as torch), even where their size is 1.
    return make_view(x, x._view.expand(shape), b.expand_to(x.node, shape), "ExpandBackward0")


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    """`x.expand(other.shape)`: a view of `x` broadcast to `other`'s shape (no copy).

    >>> em.expand_as(em.tensor([1, 2]), em.zeros(2, 2))
    tensor([[1, 2],
            [1, 2]])
    """
    return expand(x, tuple(other.shape))


def broadcast_to(x: Tensor, shape) -> Tensor:
    """A view of `x` broadcast to `shape` (no copy); same as `x.expand(shape)`.

    >>> em.broadcast_to(em.tensor([1, 2]), (2, 2))
    tensor([[1, 2],
            [1, 2]])
    """
    return expand(x, tuple(shape))


def contiguous(x: Tensor) -> Tensor:
    """`x` itself if it is contiguous in row-major order, else a contiguous copy.

    >>> t = em.zeros(2, 3).t()
    >>> t.is_contiguous(), em.contiguous(t).is_contiguous()
    (False, True)
    """
    if x.is_contiguous():
        return x
    raw = x.node
    return result(raw, (x,), "CloneBackward0", (raw,))


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """A view of `x` keeping `length` entries of dim `dim` from index `start`.

    `start` may be negative (counted from the end); the slice must fit in the dim.

    >>> em.narrow(em.arange(6).reshape(2, 3), 1, 1, 2)
    tensor([[1, 2],
            [4, 5]])
    """
    if x.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = _dim(dim, x.ndim)
    size = x.shape[d]
    if start < 0:
        start += size
    if not (0 <= start <= size and 0 <= length and start + length <= size):
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size "
                           f"({size}).")
    return slice_dim(x, d, start, start + length, 1)  # PyTorch records a slice


def slice_dim(x: Tensor, d: int, start: int, stop: int, step: int,
              name: str = "SliceBackward0") -> Tensor:
    arg = tuple([(start, stop, step) if i == d else (0, s, 1)
                 for i, s in enumerate(x._view.shape)])
    return make_view(x, x._view.slice(d, start, stop, step), node(Op.SLICE, (x.node,), arg),
                     name)


def select(x: Tensor, dim: int, index: int) -> Tensor:
    """A view of `x` at index `index` of dim `dim`, which it removes (`x[:, index]` for dim 1).

    >>> em.select(em.arange(6).reshape(2, 3), 1, 0)
    tensor([0, 3])
    """
    shape = x._view.shape
    if not shape:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = dim if type(dim) is int and 0 <= dim < len(shape) else _dim(dim, len(shape))
    size = shape[d]
    if not -size <= index < size:
        raise IndexError(f"index {index} is out of bounds for dimension {d} with size {size}")
    index %= size
    arg = tuple([(index, index + 1, 1) if i == d else (0, s, 1) for i, s in enumerate(shape)])
    v = x._view.select(d, index)
    one = shape[:d] + (1,) + shape[d + 1:]
    n = b.reshape(node(Op.SLICE, (x.node,), arg, x.dtype, one), v.shape)
    return make_view(x, v, n, "SelectBackward0")


def diagonal(x: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of the (dim1, dim2) planes, as a view (last dim of the result)."""
    a, c = _dim(dim1, x.ndim), _dim(dim2, x.ndim)
    if a == c:
        raise RuntimeError("diagonal dimensions cannot be identical")
    n1, n2 = x.shape[a], x.shape[c]
    length = max(0, min(n1, n2 - offset) if offset >= 0 else min(n1 + offset, n2))
    st = x._view.strides
    off = x._view.offset + (offset * st[c] if offset >= 0 else -offset * st[a])
    if length == 0:
        off = x._view.offset
    keep = [i for i in range(x.ndim) if i not in (a, c)]
    v = View(tuple(x.shape[i] for i in keep) + (length,),
             tuple(st[i] for i in keep) + (st[a] + st[c],), off)
    # the node reads the same elements from a contiguous copy of x's value
    cv = View.contiguous(tuple(x.shape))
    coff = (offset * cv.strides[c] if offset >= 0 else -offset * cv.strides[a]) if length else 0
    nv = View(v.shape, tuple(cv.strides[i] for i in keep) + (cv.strides[a] + cv.strides[c],),
              coff)
    return make_view(x, v, node(Op.AS_STRIDED, (b.flat(x.node),), nv, x.dtype, nv.shape),
                     "DiagonalBackward0")


def flip(x: Tensor, dims) -> Tensor:
    """A copy of `x` with the order of the elements reversed along `dims`.

    Args:
        x (Tensor): the tensor to flip.
        dims (int or sequence of ints): the dims to reverse (each at most once).

    >>> em.flip(em.tensor([[0, 1, 2], [3, 4, 5]]), 1)
    tensor([[2, 1, 0],
            [5, 4, 3]])
    """
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    axes = sorted(_dim(d, x.ndim) for d in dims)
    for a, a2 in zip(axes, axes[1:]):
        if a == a2:
            raise RuntimeError(f"dim {a} appears multiple times in the list of dims")
    axes = tuple(axes)
    if not axes or x.ndim == 0:
        return x.clone()
    raw = x.node
    # NOTE: laid out as x is (PyTorch's preserve_format): a flip of x.T has x.T's strides
    order, (n,) = elementwise.laid_out((x,), (raw,))
    if order is not None:
        axes = tuple(sorted(order.index(d) for d in axes))
    return result(node(Op.FLIP, (n,), axes), (x,), "FlipBackward0", (raw,), order=order)


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dim (1-D empty tensors are skipped, as in PyTorch).

    The tensors must match in every other dim; the dtype is their promoted dtype.
    `em.concat` is an alias of `em.cat`.

    >>> em.cat([em.tensor([1, 2]), em.tensor([3])])
    tensor([1, 2, 3])
    """
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("cat(): expected a non-empty list of Tensors")
    for i, x in enumerate(tensors):
        if not isinstance(x, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got "
                            f"{type(x).__name__}")
    for i, x in enumerate(tensors):
        if x.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be "
                               "concatenated")
    parts = [x for x in tensors if not (x.ndim == 1 and x.shape[0] == 0)] or tensors[:1]
    ref = parts[0]
    d = _dim(dim, ref.ndim)
    for i, x in enumerate(parts):
        if x.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} "
                               f"and {x.ndim}")
        for j in range(ref.ndim):
            if j != d and x.shape[j] != ref.shape[j]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. "
                                   f"Expected size {ref.shape[j]} but got size {x.shape[j]} for "
                                   f"tensor number {i} in the list.")
    # NOTE: the skipped empty tensors still take part in the dtype promotion (PyTorch)
    dtype = tensors[0].dtype
    for x in tensors[1:]:
        dtype = dt.promote_types(dtype, x.dtype)
    # NOTE: the skipped empty tensors are inputs too: as in PyTorch, their gradient is
    # an empty tensor, not None
    inputs = tuple(tensors)
    in_nodes = distinct_nodes(inputs, tuple(x.node for x in inputs))
    by_id = {id(x): n for x, n in zip(inputs, in_nodes)}
    raws = tuple(by_id[id(x)] for x in parts)
    total = sum(x.shape[d] for x in parts)
    shape = tuple(total if j == d else s for j, s in enumerate(ref.shape))
    out = b.zeros(dtype, (prod(shape),))
    full = View.contiguous(shape)
    start = 0
    for raw in raws:
        size = raw.shape[d]
        if raw.numel:  # an empty part writes nothing
            out = b.write(out, b.cast(raw, dtype), full.slice(d, start, start + size, 1))
        start += size
    return result(b.reshape(out, shape), inputs, "CatBackward0", in_nodes)


concat = cat


def stack(tensors, dim: int = 0) -> Tensor:
    """Join equally shaped tensors along a new dim `dim` (a copy).

    Args:
        tensors (sequence of Tensors): the tensors to join, all of one shape.
        dim (int): where the new dim goes, in `[-ndim - 1, ndim]`.

    The dtype is the promoted dtype of the inputs.

    >>> em.stack([em.tensor([1, 2]), em.tensor([3, 4])], 1)
    tensor([[1, 3],
            [2, 4]])
    """
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    shape = tuple(tensors[0].shape)
    for i, x in enumerate(tensors):
        if tuple(x.shape) != shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(shape)} at entry 0 and {list(x.shape)} at entry {i}")
    d = _dim(dim, len(shape) + 1)
    out = cat([unsqueeze(x, d) for x in tensors], d)
    if out._grad_fn is not None:
        out._grad_fn._name = "StackBackward0"
    return out


def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Split `x` along `dim` into a tuple of views.

    Args:
        x (Tensor): the tensor to split.
        split_size_or_sections (int or list of ints): the size of each piece (the
            last may be smaller), or the list of the pieces' sizes, which must sum to
            the size of `dim`.
        dim (int): the dim to split.

    >>> em.split(em.arange(5), 2)
    (tensor([0, 1]), tensor([2, 3]), tensor([4]))
    >>> em.split(em.arange(5), [1, 4])
    (tensor([0]), tensor([1, 2, 3, 4]))
    """
    d = _dim(dim, x.ndim)
    size = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got "
                               f"dimension size of {size}" if step == 0 else
                               "split expects split_size be non-negative")
        sections = [min(step, size - s) for s in range(0, size, step)] or [0]
    else:
        sections = list(split_size_or_sections)
        if sum(sections) != size:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} "
                               f"(input tensor's size at dimension {d}), but got split_sizes="
                               f"{sections}")
    out, start = [], 0
    for n in sections:
        out.append(slice_dim(x, d, start, start + n, 1, "SplitBackward0"))
        start += n
    return _multi_output(tuple(out), "Split" if isinstance(split_size_or_sections, int)
                         else "SplitWithSizes")


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple:
    """Split `x` along `dim` into at most `chunks` views of equal size (the last may be smaller).

    As in PyTorch, each piece has `ceil(size / chunks)` entries, so fewer than
    `chunks` pieces can come back.

    >>> em.chunk(em.arange(5), 2)
    (tensor([0, 1, 2]), tensor([3, 4]))
    """
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0")
    size = x.shape[_dim(dim, x.ndim)]
    step = -(-size // chunks) if size else 1
    return split(x, step, dim)


def unbind(x: Tensor, dim: int = 0) -> tuple:
    """A tuple of the views `x.select(dim, i)` for every index `i` of `dim`.

    >>> em.unbind(em.tensor([[1, 2], [3, 4]]))
    (tensor([1, 2]), tensor([3, 4]))
    """
    d = _dim(dim, x.ndim)
    views = tuple(select(x, d, i) for i in range(x.shape[d]))
    for v in views:
        if v._grad_fn is not None:
            v._grad_fn._name = "UnbindBackward0"  # PyTorch's name for each output's record
    return _multi_output(views, "Unbind")


def repeat(x: Tensor, *sizes) -> Tensor:
    """A copy of `x` repeated `sizes[i]` times along each dim (PyTorch's `Tensor.repeat`).

    `sizes` (separate ints or one sequence) has at least `x.ndim` entries; extra
    leading entries add new leading dims.

    >>> em.tensor([1, 2]).repeat(2, 2)
    tensor([[1, 2, 1, 2],
            [1, 2, 1, 2]])
    """
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than "
                           "number of dimensions of tensor")
    lead = len(sizes) - x.ndim
    shape = (1,) * lead + tuple(x.shape)
    raw = x.node
    n = b.reshape(raw, tuple(v for s in shape for v in (1, s)))
    n = b.expand_to(n, tuple(v for r, s in zip(sizes, shape) for v in (r, s)))
    n = b.reshape(n, tuple(r * s for r, s in zip(sizes, shape)))
    return result(n, (x,), "RepeatBackward0", (raw,))


def tile(x: Tensor, dims) -> Tensor:
    """A copy of `x` repeated `dims[i]` times along each dim.

    Like `repeat`, but `dims` may be shorter than `x.ndim`: missing leading entries are 1.

    >>> em.tile(em.tensor([1, 2]), (2,))
    tensor([1, 2, 1, 2])
    """
    dims = tuple(dims)
    return repeat(x, (1,) * (x.ndim - len(dims)) + dims)


# -- linear algebra --------------------------------------------------------------

def _same_dtype(a: Tensor, c: Tensor, what: str) -> None:
    if a.dtype is not c.dtype:
        raise RuntimeError(f"{what}: expected both operands to have the same dtype, but got "
                           f"{a.dtype.name} != {c.dtype.name}")
    if a.dtype is dt.bool_:
        raise RuntimeError(f"{what}: not implemented for 'Bool'")


def matmul(a: Tensor, c: Tensor) -> Tensor:
    """`torch.matmul`: vector, matrix and batched (broadcast) products."""
    if not isinstance(a, Tensor) or not isinstance(c, Tensor):
        raise TypeError("matmul(): arguments must be Tensors")
    _same_dtype(a, c, "matmul")
    if a.ndim == 0 or c.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{a.ndim}D and {c.ndim}D")
    ra, rc = distinct_nodes((a, c), (a.node, c.node))
    if a.ndim == 2 and c.ndim == 2 and ra.shape[1] == rc.shape[0] != 1:
        # NOTE: the commonest case, built directly: what the general path below builds
        # for it (no batch, no reshape) at a third of the cost
        return result(node(Op.MATMUL, (ra, rc)), (a, c), "MmBackward0", (ra, rc))
    x = b.reshape(ra, (1,) + ra.shape) if a.ndim == 1 else ra
    y = b.reshape(rc, rc.shape + (1,)) if c.ndim == 1 else rc
    if x.shape[-1] != y.shape[-2]:
        ashape = list(a.shape) if a.ndim > 1 else [1] + list(a.shape)
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({ashape[-2]}x"
                           f"{ashape[-1]} and {y.shape[-2]}x{y.shape[-1]}): shapes "
                           f"{list(a.shape)} and {list(c.shape)}")
    if a.ndim >= 3 and c.ndim <= 2 and x.shape[-1] != 1:
        # NOTE: torch's matmul folds a stack of matrices times one matrix into a single
        # matrix product (rows of every batch at once), and so does this: one GEMM instead
        # of one per batch, and the gradient of the shared matrix is one GEMM whose inner
        # axis runs over every batch's rows, not a stack of products summed afterwards
        rows = b.reshape(ra, (prod(x.shape[:-1]), x.shape[-1]))
        out_shape = x.shape[:-1] + ((rc.shape[-1],) if c.ndim > 1 else ())
        n = b.reshape(node(Op.MATMUL, (rows, y)), out_shape)
        return result(n, (a, c), "UnsafeViewBackward0", (ra, rc))
    batch = elementwise.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    x = b.expand_to(x, batch + x.shape[-2:])
    y = b.expand_to(y, batch + y.shape[-2:])
    if a.ndim == 2 and c.ndim == 2 and x.shape[-1] == 1 and x.dtype in (dt.float32, dt.float64):
        # NOTE: torch's mm with an inner size of 1 (a BLAS gemm) writes the products
        # themselves: a -0.0 product stays -0.0, where a sum from +0.0 gives +0.0
        shape = (x.shape[0], y.shape[1])
        n = node(Op.MUL, (b.expand_to(x, shape), b.expand_to(y, shape)))
    else:
        n = node(Op.MATMUL, (x, y))
    out_shape = batch + ((ra.shape[-2],) if a.ndim > 1 else ()) + \
        ((rc.shape[-1],) if c.ndim > 1 else ())
    # NOTE: PyTorch's names: a batched matmul is a bmm viewed back (UnsafeViewBackward0);
    # only em.bmm itself records BmmBackward0
    name = "MmBackward0" if a.ndim == 2 and c.ndim == 2 else (
        "DotBackward0" if a.ndim == 1 and c.ndim == 1 else
        "MvBackward0" if a.ndim == 2 and c.ndim == 1 else
        "SqueezeBackward4" if a.ndim == 1 and c.ndim == 2 else "UnsafeViewBackward0")
    return result(b.reshape(n, out_shape), (a, c), name, (ra, rc))


def mm(a: Tensor, c: Tensor) -> Tensor:
    """Matrix product of the 2-D tensors `a` (n x m) and `c` (m x p), an n x p tensor.

    Both must have one dtype; no broadcasting (see `em.matmul`).

    >>> em.mm(em.tensor([[1.0, 2.0], [3.0, 4.0]]), em.tensor([[1.0], [1.0]]))
    tensor([[3.],
            [7.]])
    """
    if a.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if c.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    return matmul(a, c)


def bmm(a: Tensor, c: Tensor) -> Tensor:
    """Batched matrix product of the 3-D tensors `a` (b x n x m) and `c` (b x m x p).

    The result is b x n x p; the batch sizes must match (no broadcasting).

    >>> em.bmm(em.ones(5, 2, 3), em.ones(5, 3, 4)).shape
    ember.Size([5, 2, 4])
    """
    if a.ndim != 3 or c.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor (got {a.ndim}D and {c.ndim}D)")
    if a.shape[0] != c.shape[0]:
        raise RuntimeError(f"batch1 and batch2 must have same number of batches, got "
                           f"{a.shape[0]} and {c.shape[0]}")
    out = matmul(a, c)
    if out._grad_fn is not None:
        out._grad_fn._name = "BmmBackward0"
    return out


def dot(a: Tensor, c: Tensor) -> Tensor:
    """Inner product of two 1-D tensors of one size and dtype, a 0-dim tensor.

    >>> em.dot(em.tensor([1.0, 1.0]), em.tensor([2.0, 3.0]))
    tensor(5.)
    """
    if a.ndim != 1 or c.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {c.ndim}D tensors")
    if a.shape[0] != c.shape[0]:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src "
                           f"[{c.shape[0]}] to have the same number of elements, but got "
                           f"{a.shape[0]} and {c.shape[0]} elements respectively")
    return matmul(a, c)


def mv(a: Tensor, v: Tensor) -> Tensor:
    """Matrix-vector product of the 2-D `a` (n x m) and the 1-D `v` (m), a 1-D tensor (n).

    >>> em.mv(em.tensor([[1.0, 2.0], [3.0, 4.0]]), em.tensor([1.0, 1.0]))
    tensor([3., 7.])
    """
    if a.ndim != 2 or v.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {a.ndim}D, {v.ndim}D")
    return matmul(a, v)


def outer(a: Tensor, c: Tensor) -> Tensor:
    """Outer product of the 1-D tensors `a` (n) and `c` (m): the n x m tensor `a[i] * c[j]`.

    >>> em.outer(em.tensor([1, 2]), em.tensor([1, 10, 100]))
    tensor([[  1,  10, 100],
            [  2,  20, 200]])
    """
    if a.ndim != 1 or c.ndim != 1:
        raise RuntimeError(f"outer: expected 1D tensors, got {a.ndim}D and {c.ndim}D")
    return elementwise.mul(unsqueeze(a, 1), unsqueeze(c, 0))


# Tensor methods: `t.view(2, 3)` is `view(t, 2, 3)`; `a @ b` is `matmul(a, b)`
for _name in __all__:
    if _name not in ("cat", "concat", "stack"):
        setattr(Tensor, _name, globals()[_name])
Tensor.__matmul__ = matmul
Tensor.__rmatmul__ = lambda self, other: matmul(other, self)
Tensor.T = property(lambda self: permute(self, *reversed(range(self.ndim))),
                    doc="self with its dimensions reversed (a view).")
Tensor.mT = property(lambda self: transpose(self, -2, -1),
                     doc="self with its last two dimensions swapped (a view).")
