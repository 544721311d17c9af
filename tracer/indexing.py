"""Indexing (`t[idx]`), assignment (`t[idx] = v`) and gathers.

Basic indices (ints, slices with positive steps, `...`, `None`) give views on
the same storage. Integer tensors, lists and boolean masks are advanced indices
with NumPy's and PyTorch's placement rules; they gather with the TAKE primitive
(a boolean mask is turned into integer indices, which needs the mask's value).
Assignment is an in-place write: basic targets write a view, advanced targets
scatter into the tensor.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, node
from ..ir.ops import Op
from ..ir.view import View
from ..runtime.context import current
from . import elementwise
from .data import check_scalar
from .elementwise import aligned_strides, as_operand, broadcast_shapes, order_of_strides
from .inplace import check_no_internal_overlap, copy_, inplace_node, inplace_op
from .records import result
from .shape import expand, make_view, narrow, select, slice_dim, unsqueeze
from .storage import realize_storages
from .tensor import Tensor, _dim, copy_of, from_array, wrap_node

__all__ = ["getitem", "setitem", "take_along", "nonzero", "index_select", "masked_fill",
           "masked_fill_", "gather", "linear_index", "where"]


def _to_index_tensor(obj) -> Tensor:
    t = obj if isinstance(obj, Tensor) else copy_of(np.asarray(obj) if not isinstance(
        obj, (list, tuple)) else obj)
    if t.dtype.is_floating_point:
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    return t


def _expand_index(idx, ndim: int) -> list:
    """Normalise idx into a list of items with the ellipses expanded.

    An int item is returned as `(int, position)`: its position in idx, which is the
    dimension an out-of-range error names, as PyTorch names it.
    """
    if not isinstance(idx, tuple):
        idx = (idx,)
    items = []
    for pos, it in enumerate(idx):
        if isinstance(it, (list, np.ndarray)) or (isinstance(it, Tensor)):
            it = _to_index_tensor(it)
            if it.dtype is not dt.bool_ or it.ndim:
                items.append(it)
                continue
            it = bool(it.item())  # NOTE: a 0-d mask is a bool scalar (see below)
        if isinstance(it, (bool, np.bool_)):
            # NOTE: a bool scalar is a new dim of size 1 selected (True) or emptied (False).
            coords = from_array(np.zeros(1 if it else 0, np.int64), dt.int64)
            items.append(("newaxis_mask", coords))
            continue
        elif isinstance(it, (int, np.integer)):
            it = (int(it), pos)
        elif not (it is None or it is Ellipsis or isinstance(it, slice)):
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or "
                             f"byte Variables are valid indices (got {type(it).__name__})")
        items.append(it)
    used = sum(1 for it in items if isinstance(it, slice) or type(it) is tuple and it[0] !=
               "newaxis_mask") + sum(it.ndim if it.dtype is dt.bool_ else 1
                                     for it in items if isinstance(it, Tensor))
    if used > ndim:
        if ndim == 0 and used == 1 and type(items[0]) is tuple:
            raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python "
                             "to convert a 0-dim tensor to a number")
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    return _fill_dims(items, ndim, used)


def _fill_dims(items: list, ndim: int, used: int) -> list:
    """Replace the ellipses by full slices; add full slices for the dims left over.

    NOTE: as in PyTorch, every `...` stands for the `ndim - used` dims no item names, so
    with several of them the later ones skip past the last dim: there they are no-ops,
    and an item after them is out of range.
    """
    out = []
    consumed = 0
    for it in items:
        if it is Ellipsis:
            skip = ndim - used
            out += [slice(None)] * max(0, min(skip, ndim - consumed))
            consumed += skip
            continue
        if it is None or type(it) is tuple and it[0] == "newaxis_mask":
            out.append(it)
            continue
        width = it.ndim if isinstance(it, Tensor) and it.dtype is dt.bool_ else 1
        if consumed + width > ndim:
            if type(it) is tuple:  # PyTorch's words: the dim past the end has size 0
                raise IndexError(f"index {it[0]} is out of bounds for dimension {it[1]} with "
                                 f"size 0")
            raise IndexError(f"too many indices for tensor of dimension {ndim} (an index "
                             f"after several ellipses ('...') names dimension {consumed})")
        consumed += width
        out.append(it)
    if consumed < ndim:
        out += [slice(None)] * (ndim - consumed)
    return out


def _basic(x: Tensor, items: list):
    """Apply ints, slices and None; advanced items are kept as full dims.

    Returns (view tensor, [(output dim, index tensor), ...]).
    """
    out = x
    dim = 0
    advanced = []
    for it in items:
        if it is None:
            out = unsqueeze(out, dim)
            dim += 1
        elif isinstance(it, tuple) and it[0] == "newaxis_mask":
            out = unsqueeze(out, dim)
            advanced.append((dim, it[1]))
            dim += 1
        elif type(it) is tuple:  # (int, its position in the index)
            i, pos = it
            size = out.shape[dim]
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of bounds for dimension {pos} with size "
                                 f"{size}")
            out = select(out, dim, i)
        elif isinstance(it, slice):
            start, stop, step = it.start, it.stop, it.step
            if step is not None and step <= 0:
                raise ValueError("step must be greater than zero")
            start, stop, step = slice(start, stop, step).indices(out.shape[dim])
            stop = max(stop, start)
            if (start, stop, step) != (0, out.shape[dim], 1):
                out = slice_dim(out, dim, start, stop, step)
            dim += 1
        else:  # an index tensor
            if it.dtype is dt.bool_:
                for k in range(it.ndim):
                    if it.shape[k] != out.shape[dim + k]:
                        raise IndexError(
                            f"The shape of the mask {list(it.shape)} at index {k} does not "
                            f"match the shape of the indexed tensor {list(out.shape)} at "
                            f"index {dim + k}")
                for k, coords in enumerate(np.nonzero(it._array())):
                    advanced.append((dim + k, from_array(coords.astype(np.int64), dt.int64)))
                dim += it.ndim
            else:
                advanced.append((dim, it))
                dim += 1
    return out, advanced


def linear_index(idx_nodes: list[Node], sizes: list[int], shape) -> Node:
    """Row-major linear index of (i0, i1, ...) into dims of `sizes` (negatives wrap).

    An index outside [-size, size) of its own dim gives the (out of range) index
    prod(sizes), so the TAKE or SCATTER refuses it instead of reading a neighbouring row.
    """
    total = valid = None
    for i, size in zip(idx_nodes, sizes):
        i = b.expand_to(b.cast(i, dt.int64), shape)
        if len(sizes) > 1:  # NOTE: a single dim's TAKE checks its own range
            ok = node(Op.AND, (node(Op.LE, (b.like(i, -size), i)),
                               node(Op.LT, (i, b.like(i, size)))))
            valid = ok if valid is None else node(Op.AND, (valid, ok))
        i = b.where(node(Op.LT, (i, b.like(i, 0))), node(Op.ADD, (i, b.like(i, size))), i)
        total = i if total is None else node(Op.ADD, (node(Op.MUL, (total, b.like(i, size))),
                                                      i))
    if valid is not None:
        total = b.where(valid, total, b.like(total, int(np.prod(sizes))))
    return total


def _advanced(v: Tensor, advanced, keep_layout: bool = True):
    """Gather `v` at the advanced indices; returns (node, index tensors, order): the
    node is laid out in `order` (see `wrap_node`), PyTorch's layout for `v[idx]`
    unless `keep_layout` is False (then row-major, order None)."""
    dims = [d for d, _ in advanced]
    idx_tensors = [t for _, t in advanced]
    try:
        bshape = broadcast_shapes(*(t.shape for t in idx_tensors))
    except RuntimeError:
        shapes = ", ".join(str(list(t.shape)) for t in idx_tensors)
        raise IndexError(f"shape mismatch: indexing tensors could not be broadcast together "
                         f"with shapes {shapes}") from None
    adjacent = dims == list(range(dims[0], dims[0] + len(dims)))
    raw = v.node
    x = raw
    strides = v._view.strides
    if not adjacent:
        rest = [i for i in range(v.ndim) if i not in dims]
        x = b.permute(x, dims + rest)
        strides = tuple(strides[d] for d in dims + rest)
        dims = list(range(len(dims)))
    p = dims[0]
    k = len(dims)
    sizes = [x.shape[d] for d in dims]
    merged = b.reshape(x, x.shape[:p] + (int(np.prod(sizes)),) + x.shape[p + k:])
    lin = linear_index([t.node for t in idx_tensors], sizes, bshape)
    # NOTE: bounds are checked per index dim here, since merged dims would hide them; an
    # error names the index tensor's place among them, as PyTorch's does.
    lin = _checked(lin, idx_tensors, sizes, range(len(sizes)))
    n = node(Op.TAKE, (merged, lin), p)
    order = _index_order(strides, p, k, idx_tensors, n.shape) if keep_layout else None
    if order is not None:
        n = b.permute(n, order)
    return n, idx_tensors, order


def _index_order(strides: tuple, p: int, k: int, idx_tensors, shape: tuple):
    """The layout PyTorch gives `x[..., idx, ...]` (see `memory_order`): its iterator
    reads x restrided (stride 0 along the index dims, which replace x's dims p..p+k)
    and the index tensors (stride 0 along x's other dims)."""
    if len(shape) < 2 or (all(t._view._contiguous for t in idx_tensors)
                          and _row_major(strides, p, k)):
        return None
    m = len(shape) - p - (len(strides) - p - k)  # the index dims' count
    ops = [list(strides[:p]) + [0] * m + list(strides[p + k:])]
    inner = shape[p:p + m]
    for t in idx_tensors:
        ops.append([0] * p + aligned_strides(t._view.shape, t._view.strides, inner)
                   + [0] * (len(shape) - p - m))
    return order_of_strides(ops, shape)


def _row_major(strides: tuple, p: int, k: int) -> bool:
    """Whether x's dims outside the indexed ones have strictly decreasing strides (the
    common case: the result is row-major)."""
    kept = strides[:p] + strides[p + k:]
    return all(a > b_ for a, b_ in zip(kept, kept[1:]))


def _checked(lin: Node, idx_tensors, sizes, dims, error=IndexError) -> Node:
    """`lin`, after checking the realised index tensors against their dims' sizes.

    NOTE: while em.compile traces, an index that is an input of the trace has no known
    value: like a pending index, it is not checked (reading it would be a graph break).
    """
    trace = current().trace
    for t, size, d in zip(idx_tensors, sizes, dims):
        if t._storage.is_realized and t.numel() and (trace is None or
                                                     not trace.is_input(t._storage)):
            a = t._array()  # NOTE: a read: `numpy()` would share t's memory
            bad = (a < -size) | (a >= size)
            if bad.any():
                raise error(f"index {int(a[bad].flat[0])} is out of bounds for dimension "
                            f"{d} with size {size}")
    return lin


def getitem(x: Tensor, idx) -> Tensor:
    kind = type(idx)
    if kind is int and x._view.shape:
        return select(x, 0, idx)  # x[i], the commonest: the same checks and errors
    if kind is slice and x._view.shape:
        v, _ = _basic(x, [idx])  # x[a:b:c] skips the general normalisation
        if v is x:  # NOTE: PyTorch's x[:] is a new view all the same (SliceBackward0)
            v = slice_dim(x, 0, 0, x._view.shape[0], 1)
        return v
    items = _expand_index(idx, x.ndim)
    v, advanced = _basic(x, items)
    if not advanced:
        return v if v is not x else alias(x)  # x[...], x[:, :]: PyTorch's alias
    n, idx_tensors, order = _advanced(v, advanced)
    return result(n, (v,), "IndexBackward0", (v.node,), order=order)


def alias(x: Tensor) -> Tensor:
    """A new view of all of x, as PyTorch's `x[...]` (AliasBackward0): never x itself,
    so `retain_grad()` or `requires_grad` of the view are its own."""
    return make_view(x, x._view, x.node, "AliasBackward0")


def setitem(x: Tensor, idx, value) -> None:
    """`x[idx] = value`, written into x's storage (every view of it sees the change).

    Lazy index tensors are computed first, so an out-of-range index raises here and
    not at a later read: a failed assignment must leave x as it was.
    """
    if isinstance(value, Tensor) and value.numel() != 1:
        _check_index_not_target(x, idx)
    if _fills_by_mask(x, idx, value) and not x._view.has_overlap():
        # NOTE: `x[mask] = number` with a mask of x's shape is a masked fill: no count of
        # selected elements, so no realisation and no data-dependent shape (a loop doing
        # `grad[h < 0] = 0` builds the same graph every step)
        inplace_op(x, masked_fill, idx, value, name="IndexPutBackward0")
        return
    pending = [t._storage for t in (idx if isinstance(idx, tuple) else (idx,))
               if isinstance(t, Tensor) and not t._storage.is_realized]
    if pending:
        realize_storages(pending)
    items = _expand_index(idx, x.ndim)
    value = _drop_leading_ones(as_operand(value, "value"))
    v, advanced = _basic(x, items)
    if not advanced:
        if not isinstance(value, Tensor):
            check_no_internal_overlap(v)  # NOTE: a number is copied, as in PyTorch, not filled
        copy_(v, value)
        return
    # Scatter into x at the linear (row-major) positions of the selected elements.
    target, iota = _scatter_target(x)
    positions = getitem(iota, idx)
    target_shape = tuple(positions.shape)
    pos = b.flat(positions.node)

    def build(old: Node, *vals: Node) -> Node:
        if vals:
            src = b.expand_to(b.cast(vals[0], old.dtype), target_shape)
        else:
            src = b.full(value, old.dtype, target_shape)
        return b.reshape(node(Op.SCATTER, (b.flat(old), pos, b.flat(src)), 0), old.shape)
    _check_broadcast(value, target_shape)
    inplace_node(target, build, (value,) if isinstance(value, Tensor) else (),
                 "IndexPutBackward0")


def _check_index_not_target(x: Tensor, idx) -> None:
    """PyTorch's index_put_ refuses an index tensor that is the tensor written (a value of
    one element, of any shape, is a masked fill there, which allows it)."""
    for t in idx if isinstance(idx, tuple) else (idx,):
        if isinstance(t, Tensor) and t._storage is x._storage:
            raise RuntimeError("unsupported operation: some elements of the input tensor and "
                               "the written-to tensor refer to a single memory location. "
                               "Please clone() the tensor before performing the operation.")


_CATEGORY = {bool: 0, int: 1, float: 2}


def _fills_by_mask(x: Tensor, idx, value) -> bool:
    """Whether `x[idx] = value` is `x.masked_fill_(idx, value)`: a bool mask of x's shape
    and a Python number that x's dtype holds without promotion."""
    category = _CATEGORY.get(type(value))
    return (isinstance(idx, Tensor) and idx.dtype is dt.bool_ and x.ndim > 0
            and tuple(idx.shape) == tuple(x.shape) and idx.device == x.device
            and category is not None and category <= x.dtype.category)


def _scatter_target(x: Tensor):
    """(target, positions): the tensor an advanced assignment into x scatters into, and
    a tensor of x's shape holding each element's row-major position in the target.

    The target is x itself, or, when x's elements alias (an expanded view), its base,
    written at the memory each element of x reads: PyTorch allows this, with a
    deprecation warning.
    """
    if not x._view.has_overlap():
        n = node(Op.ARANGE, (), (0, 1), dt.int64, (x.numel(),))
        return x, wrap_node(b.reshape(n, tuple(x.shape)), x._storage.device)
    base = x._base
    numel = x._storage.numel
    if base is None or x._detached or not base._view.is_full(numel):
        check_no_internal_overlap(x)
    warnings.warn("Use of index_put_ on expanded tensors is deprecated. Please clone() the "
                  "tensor before performing this operation. This also applies to advanced "
                  "indexing e.g. tensor[indices] = tensor", UserWarning, stacklevel=3)
    n = node(Op.ARANGE, (), (0, 1), dt.int64, (numel,))
    return base, wrap_node(b.as_strided(n, x._view), x._storage.device)


def _drop_leading_ones(value):
    """The value with its leading size-1 dims dropped: PyTorch assigns a (1, n) value
    into a row of n."""
    if not isinstance(value, Tensor) or not value.ndim or value.shape[0] != 1:
        return value
    shape = tuple(value.shape)
    k = 0
    while k < len(shape) and shape[k] == 1:
        k += 1
    return value.reshape(shape[k:])


def _check_broadcast(value, shape) -> None:
    if isinstance(value, Tensor):
        try:
            out = broadcast_shapes(tuple(value.shape), shape)
        except RuntimeError:
            out = None
        if out != tuple(shape):
            raise RuntimeError(f"shape mismatch: value tensor of shape {list(value.shape)} "
                               f"cannot be broadcast to indexing result of shape {list(shape)}")


def take_along(x: Tensor, indices: Tensor, dim: int) -> Tensor:
    """`out[..., j, ...] = x[..., indices[..., j, ...], ...]` along dim (torch.gather)."""
    d = _dim(dim, x.ndim)
    if indices.ndim != x.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input "
                           "tensor")
    if not indices.dtype.is_integer:
        raise RuntimeError(f"gather(): Expected dtype int64 for index, got {indices.dtype}")
    _checked(None, [indices], [x.shape[d]], [d], RuntimeError)  # torch's class for gather
    shape = list(broadcast_shapes(tuple(x.shape[:d]) + (1,) + tuple(x.shape[d + 1:]),
                                  tuple(indices.shape)))
    raw = x.node
    xs = b.expand_to(raw, tuple(shape[:d]) + (x.shape[d],) + tuple(shape[d + 1:]))
    out_shape = tuple(shape)
    # the flat position of each gathered element in the (expanded, contiguous) source
    coords = []
    for i, size in enumerate(out_shape):
        if i == d:
            coords.append(indices.node)
        else:
            r = node(Op.ARANGE, (), (0, 1), dt.int64, (size,))
            coords.append(b.reshape(r, tuple(size if j == i else 1 for j in range(len(shape)))))
    sizes = list(xs.shape)
    lin = linear_index(coords, sizes, out_shape)
    n = node(Op.TAKE, (b.flat(xs), b.flat(lin)), 0)
    return result(b.reshape(n, out_shape), (x,), "GatherBackward0", (raw,))


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """`torch.gather`: `out[i][j] = input[i][index[i][j]]` for dim=1; `index`'s shape is
    the result's (it may be smaller than `input` in the other dims, never larger)."""
    d = _dim(dim, input.ndim)
    if index.ndim != input.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input "
                           "tensor")
    if input.ndim == 0:
        return take_along(input.reshape(1), index.reshape(1), 0).reshape(())
    x = input
    for i in range(input.ndim):
        if i != d and index.shape[i] > input.shape[i]:
            raise RuntimeError(f"Size does not match at dimension {i} expected index "
                               f"{list(index.shape)} to be no larger than self "
                               f"{list(input.shape)} apart from dimension {d}")
        if i != d and index.shape[i] < input.shape[i]:
            x = narrow(x, i, 0, index.shape[i])
    return take_along(x, index, d)


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """The entries of `input` at the positions `index` along `dim` (a copy).

    Args:
        input (Tensor): the tensor to index.
        dim (int): the dim to index along.
        index (Tensor): a 1-D (or 0-dim) integer tensor of indices into `dim`.

    The result has input's dtype and shape, except that dim `dim` has `len(index)` entries.

    >>> em.index_select(em.tensor([[1, 2], [3, 4], [5, 6]]), 0, em.tensor([2, 0]))
    tensor([[5, 6],
            [1, 2]])
    """
    d = _dim(dim, input.ndim)
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index.dtype not in (dt.int32, dt.int64):
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    if input.ndim == 0:  # a scalar is one element along dim 0
        if index.numel() != 1:
            raise RuntimeError(f"index_select(): Index to scalar can have only 1 value, got "
                               f"{index.numel()} value(s)")
        _checked(None, [index], [1], [0])
        raw = input.node
        n = node(Op.TAKE, (b.reshape(raw, (1,)), b.reshape(b.cast(index.node, dt.int64), ())),
                 0)
        return result(n, (input,), "IndexSelectBackward0", (raw,))
    _checked(None, [index], [input.shape[d]], [d])  # the error names dim, not 0
    # NOTE: unlike input[..., index], the result is row-major whatever input's layout
    n, _, _ = _advanced(input, [(d, index.reshape(-1))], keep_layout=False)
    return result(n, (input,), "IndexSelectBackward0", (input.node,))


def nonzero(input: Tensor, *, as_tuple: bool = False):
    """Indices of nonzero elements (needs the value: it computes it)."""
    a = input._array()
    coords = np.nonzero(a) if a.ndim else np.nonzero(a.reshape(1))
    if not as_tuple and a.ndim == 0:  # as torch: one row (or none) of no coordinates
        return from_array(np.zeros((int(coords[0].size), 0), np.int64), dt.int64,
                          input._storage.device)
    if as_tuple:
        return tuple(from_array(c.astype(np.int64), dt.int64,
                                input._storage.device) for c in coords)
    if not coords:
        return from_array(np.zeros((0, 0), np.int64), dt.int64, input._storage.device)
    # NOTE: column-major, as PyTorch's result: (n, ndim) with strides (1, n)
    n = int(coords[0].size)
    out = from_array(np.stack(coords).astype(np.int64), dt.int64, input._storage.device)
    out._view = View((n, len(coords)), (1, n), 0)
    out._node_src = None  # out.node reads the storage through the new view
    return out


def masked_fill(input: Tensor, mask: Tensor, value) -> Tensor:
    """A copy of `input` with `value` where the bool `mask` is True.

    Args:
        input (Tensor): the tensor to fill.
        mask (Tensor): a bool tensor broadcastable to input's shape.
        value (number or 0-dim Tensor): the value to write.

    The result has input's shape and dtype (as in PyTorch, the value is cast to it:
    2.5 into an integer tensor is 2). `Tensor.masked_fill_` writes into `input` instead.

    >>> em.masked_fill(em.tensor([1.0, 2.0, 3.0]), em.tensor([True, False, True]), 0.0)
    tensor([0., 2., 0.])
    >>> em.masked_fill(em.tensor([1, 2, 3]), em.tensor([False, True, True]), 2.5)
    tensor([1, 2, 2])
    """
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError("masked_fill_ only supports a 0-dimensional value tensor, but "
                               f"got tensor with {value.ndim} dimension(s).")
        value = value.to(input.dtype)
    elif not isinstance(value, (bool, int, float)):
        raise TypeError(f"masked_fill(): value must be a number or a 0-dim Tensor, not "
                        f"{type(value).__name__}")
    elif input.dtype.category < 2:
        check_scalar(value, input.dtype)  # torch's overflow error (300 into int8)
        value = input.dtype.np.type(value).item()
    out = elementwise.where(mask, value, input)
    if not out._view._contiguous:
        out = out.contiguous()  # NOTE: PyTorch fills a row-major copy of input
    if out._grad_fn is not None:  # PyTorch's names: by a number 0, by a tensor 1
        out._grad_fn._name = f"MaskedFillBackward{int(isinstance(value, Tensor))}"
    return out


def masked_fill_(x: Tensor, mask: Tensor, value) -> Tensor:
    """In-place `masked_fill`: writes `value` into this tensor where `mask` is True.

    >>> t = em.zeros(3)
    >>> t.masked_fill_(em.tensor([True, False, True]), 1.0)
    tensor([1., 0., 1.])
    """
    if x._view.has_overlap():
        return _masked_fill_aliased(x, mask, value)
    name = f"MaskedFillBackward{int(isinstance(value, Tensor))}"
    return inplace_op(x, masked_fill, mask, value, name=name)


def _masked_fill_aliased(x: Tensor, mask: Tensor, value) -> Tensor:
    """`masked_fill_` on a tensor whose elements alias (an expanded view): PyTorch fills
    the memory of every selected element, with a deprecation warning; so does the
    equivalent boolean-mask assignment."""
    warnings.warn("Use of masked_fill_ on expanded tensors is deprecated. Please clone() the "
                  "tensor before performing this operation. This also applies to advanced "
                  "indexing e.g. tensor[mask] = scalar", UserWarning, stacklevel=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        setitem(x, expand(mask, *x.shape), value)
    return x


def where(condition, input=None, other=None):
    """`input` where the bool `condition` holds, else `other` (broadcast together).

    With only `condition`, the indices of its True elements, one tensor per
    dimension (`nonzero(condition, as_tuple=True)`), as in PyTorch.

    >>> em.where(em.tensor([True, False]), em.tensor([1.0, 2.0]), 0.0)
    tensor([1., 0.])
    >>> em.where(em.tensor([False, True]))
    (tensor([1]),)
    """
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    return elementwise.where(condition, input, other)


# Tensor methods: `t[i]`, `t[i] = v`, `t.gather(0, idx)`, ...
for _name in ("index_select", "masked_fill", "masked_fill_", "gather", "nonzero"):
    setattr(Tensor, _name, globals()[_name])
Tensor.__getitem__ = getitem
Tensor.__setitem__ = setitem
