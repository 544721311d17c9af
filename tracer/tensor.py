"""The lazy `Tensor`: a Storage read through a View, plus its autograd record.

Operations never compute: they build Nodes (tracer/elementwise.py, shape.py,
reductions.py, indexing.py and friends) and wrap them in new Tensors through
`result`. A value is computed when
something needs it (`numpy`, `item`, `tolist`, `repr`, `bool`, `__array__`,
`data_ptr`, `realize`). Views share their base's Storage; in-place operations
replace the Storage's value (see storage.py).

Methods that are plain operations are attached from those modules by
tracer/methods.py, so this file holds only what a tensor *is*.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, node
from ..ir.ops import Op
from ..ir.view import View
from ..runtime import devices
from ..runtime.buffers import check_size, owned
from ..runtime.context import current
from ..runtime.interpreter import _strided
from .data import as_array
from .device import check_device, device
from .printing import format_tensor
from .storage import Storage, realize_storages

__all__ = ["Tensor", "Size", "copy_of", "wrap_node", "from_array"]


class Size(tuple):
    """A tensor's shape: a tuple, printed as PyTorch prints `torch.Size`."""

    def __repr__(self) -> str:
        return f"ember.Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


class Tensor:
    """A lazy n-dimensional array with PyTorch's API. Build one with `em.tensor(...)`."""

    __slots__ = ("_storage", "_view", "_base", "dtype", "_rg", "_grad_fn",
                 "_grad", "_node", "_node_src", "_retains_grad", "_accum", "_fn_version",
                 "_detached", "_cut", "_view_meta", "__weakref__")

    # NOTE: make NumPy defer to Tensor's reflected operators (ndarray + Tensor).
    __array_priority__ = 1000

    # NOTE: `Tensor(...)` is the legacy constructor (tracer/info.py binds __new__)
    def __init__(self, *args, **kwargs):
        pass

    # -- identity -----------------------------------------------------------
    @property
    def _requires_grad(self) -> bool:
        """Whether gradients flow through this tensor: its own flag, or its base's.

        NOTE: as in PyTorch, a view (not detached) requires grad whenever its base
        does, even a view made before a write through another alias made the base
        require grad; its record is rebuilt from the base's (`current_grad_fn`). A view
        of a detached tensor follows that tensor (`history_base`).
        """
        if self._rg:
            return True
        base = self.history_base()
        return base is not None and base._rg

    def history_base(self) -> Tensor | None:
        """The tensor whose autograd history a view shares: its base, or for a view of a
        detached tensor that tensor (`_cut`; as in PyTorch, `x.detach()` starts a history
        of its own, and `x.detach()[0].mul_(w)` gives it one). None for a tensor that is
        no view, or is itself what `detach()` returned."""
        return self._cut if self._detached else self._base

    @_requires_grad.setter
    def _requires_grad(self, flag: bool) -> None:
        self._rg = flag

    @property
    def node(self) -> Node:
        """The node computing this tensor's current value."""
        trace = current().trace
        if trace is not None:
            trace.read(self)  # em.compile notes the tensors a traced function reads
        src = self._storage.node
        if self._node_src is not src:
            n = b.as_strided(src, self._view)
            if self._detached:
                # NOTE: a detached alias reads the same value through a node of its own,
                # so autograd never mistakes it for the tensor it was detached from.
                n = node(Op.CAST, (n,), None, n.dtype, n.shape)
            self._node = n
            self._node_src = src
        return self._node

    @property
    def shape(self) -> Size:
        return Size(self._view.shape)

    def size(self, dim: int | None = None):
        """The shape as an `ember.Size` (a tuple), or the size of dim `dim` as an int.

        >>> x = em.zeros(2, 3)
        >>> x.size()
        ember.Size([2, 3])
        >>> x.size(-1)
        3
        """
        if dim is None:
            return Size(self._view.shape)
        return self._view.shape[_dim(dim, self.ndim)]

    @property
    def ndim(self) -> int:
        return len(self._view.shape)

    def dim(self) -> int:
        """The number of dims (`self.ndim`)."""
        return len(self._view.shape)

    def ndimension(self) -> int:
        """The number of dims; an alias of `Tensor.dim`."""
        return len(self._view.shape)

    def numel(self) -> int:
        """The number of elements (the product of the shape); `nelement` is an alias.

        >>> em.zeros(2, 3).numel()
        6
        """
        return self._view.numel

    nelement = numel

    def element_size(self) -> int:
        """The size of one element in bytes (4 for float32)."""
        return self.dtype.itemsize

    @property
    def device(self):
        return device(self._storage.device)

    @property
    def is_cuda(self) -> bool:
        return self._storage.device.startswith("cuda")

    def stride(self, dim: int | None = None):
        """The strides, in elements, as a tuple, or the stride of dim `dim` as an int.

        >>> x = em.zeros(2, 3)
        >>> x.stride(), x.t().stride()
        ((3, 1), (1, 3))
        """
        if dim is None:
            return tuple(self._view.strides)
        return self._view.strides[_dim(dim, self.ndim)]

    def storage_offset(self) -> int:
        """The index, in elements, of this tensor's first element in its storage.

        >>> em.zeros(2, 3)[1].storage_offset()
        3
        """
        return self._view.offset

    def is_contiguous(self) -> bool:
        """Whether the elements lie in row-major order with no gaps (see `contiguous`).

        >>> x = em.zeros(2, 3)
        >>> x.is_contiguous(), x.t().is_contiguous()
        (True, False)
        """
        return self._view.is_contiguous()

    @property
    def is_leaf(self) -> bool:
        # NOTE: a view written through another alias after its base required grad has
        # a history too (rebuilt on demand: records.current_grad_fn)
        base = self.history_base()
        return self._grad_fn is None and not (
            base is not None and base._rg and self._fn_version != self._storage.version)

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Mark a leaf as needing gradients (in place); returns self."""
        if not self.is_leaf:
            if not requires_grad:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want "
                    "to use a computed variable in a subgraph that doesn't require "
                    "differentiation use var_no_grad = var.detach().")
            return self
        if requires_grad and not (self.dtype.is_floating_point):
            raise RuntimeError(
                f"only Tensors of floating point dtype can require gradients, got {self.dtype}")
        if requires_grad and not self._requires_grad:
            # A leaf's identity in the graph is its buffer: two lazy constants of one
            # value would otherwise be the same node, and gradients could not tell them
            # apart.
            self.realize()
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def grad(self):
        trace = current().trace
        if trace is not None:
            trace.touch(self)  # em.compile guards and writes back a captured .grad
        if self._grad is None and self._grad_fn is not None and not self._retains_grad:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. "
                "Its .grad attribute won't be populated during autograd.backward(). If you "
                "indeed want the .grad field to be populated for a non-leaf Tensor, use "
                ".retain_grad() on the non-leaf Tensor.", UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None, got "
                                f"{type(value).__name__}")
            if tuple(value.shape) != tuple(self.shape):
                raise RuntimeError(f"assigned grad has data of a different size: "
                                   f"{tuple(value.shape)} vs {tuple(self.shape)}")
        trace = current().trace
        if trace is not None:
            trace.touch(self)
        self._grad = value

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    # -- values ---------------------------------------------------------------
    def realize(self) -> Tensor:
        """Compute this tensor's value now (and keep it); returns self."""
        if not self._storage.is_realized:
            realize_storages([self._storage])
        return self

    def _array(self) -> np.ndarray:
        """The value as a (possibly strided, read-only) NumPy view of the buffer."""
        flat = self._storage.array()
        v = self._view
        if v.offset == 0 and v.numel == flat.size and v.is_contiguous():
            return flat.reshape(v.shape)
        return _strided(flat, v)

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The value as a NumPy array sharing this tensor's memory (as PyTorch does).

        From then on the tensor's in-place operations are written into the array
        before they return, and a write into the array is seen by every value computed
        after it, including lazy expressions built before it (eager mode computes them
        at once, in torch's order); see `em.from_numpy`. bfloat16 tensors come back as
        float32 arrays (NumPy has no bfloat16).
        """
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        self._on_host("numpy")
        a = self._shared_array()
        self._storage.share()  # later in-place updates must reach `a`; NumPy may write it
        return a

    def _shared_array(self) -> np.ndarray:
        """The value as a NumPy view of the buffer, writable where the buffer is (`numpy()`)."""
        a = self._array()
        if a.flags.writeable:
            return a
        flat = self._storage.buffer.array
        # NOTE: a view's array is strided over the buffer; `_array` makes it read-only,
        # but NumPy may write the memory `numpy()` shares, as with torch
        return np.lib.stride_tricks.as_strided(flat[self._view.offset:], a.shape, a.strides)

    def _on_host(self, what: str) -> None:
        """Raise PyTorch's error where NumPy would share device memory (`.numpy()`)."""
        if self._storage.device != "cpu":
            raise TypeError(f"can't convert {self._storage.device} device type tensor to "
                            f"{what}. Use Tensor.cpu() to copy the tensor to host memory first.")

    def __array__(self, dtype=None, copy=None):
        self._on_host("numpy")
        a = self._array()
        if dtype is not None:
            return a.astype(dtype)
        if copy:
            return np.array(a)
        self._storage.share()  # NOTE: `np.asarray(t)` shares t's memory, as `t.numpy()` does
        return self._shared_array()

    def item(self):
        """The value of a one-element tensor as a Python number (computes it if pending).

        Raises RuntimeError for any other number of elements. Inside `em.compile`, reading
        a value is a graph break.

        >>> em.tensor([2.5]).item()
        2.5
        """
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted "
                               "to Scalar")
        return self._array().reshape(()).item()

    def tolist(self):
        """The values as nested Python lists of numbers (a number for a 0-dim tensor).

        >>> em.tensor([[1, 2], [3, 4]]).tolist()
        [[1, 2], [3, 4]]
        """
        return self._array().tolist()

    def data_ptr(self) -> int:
        """The address of this tensor's first element (equal for views of one storage; in
        the device's memory for a cuda tensor)."""
        flat = self._storage.raw()  # NOTE: realises (a graph break while tracing)
        if not isinstance(flat, np.ndarray):
            return flat.data_ptr() + self._view.offset * flat.element_size()
        return flat.__array_interface__["data"][0] + self._view.offset * flat.itemsize

    def __repr__(self) -> str:
        fn = self.grad_fn if self._requires_grad else None  # NOTE: a stale view gets one
        return format_tensor(self._array(), self.dtype,
                             requires_grad=self._requires_grad and fn is None,
                             grad_fn_name=_short_name(fn) if fn is not None else None,
                             device=self._storage.device)

    __str__ = __repr__

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.numel()} elements is "
                               "ambiguous")
        return bool(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __index__(self) -> int:
        if self.dtype.is_floating_point or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted "
                            "to an index")
        return int(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._view.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._view.shape[0]))

    def __hash__(self) -> int:
        return id(self)

    def __reduce_ex__(self, protocol):
        device = self._storage.device
        return (_rebuild, (np.array(self._array()), self.dtype.name, self._requires_grad)
                + ((device,) if device != "cpu" else ()))

    def __deepcopy__(self, memo):
        t = from_array(np.array(self._array()), self.dtype, self._storage.device)
        t._requires_grad = self._requires_grad
        return t


def _rebuild(arr, dtype_name, requires_grad, device="cpu"):
    t = from_array(arr, dt.to_dtype(dtype_name), check_device(device))
    t._requires_grad = requires_grad
    return t


def _dim(dim: int, ndim: int) -> int:
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if dim < lo or dim > hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], "
                         f"but got {dim})")
    return dim % max(ndim, 1)


def _new(storage: Storage, view: View, dtype: dt.DType, base) -> Tensor:
    t = object.__new__(Tensor)
    t._grad = None
    _init(t, storage, view, dtype, base)
    return t


def _init(t: Tensor, storage: Storage, view: View, dtype: dt.DType, base) -> None:
    """Give t (a new tensor, or one taking another's data: `Parameter`'s `.data = x`)
    the state of a tensor reading `storage` through `view`, with no autograd history
    (its `.grad` is left as it is)."""
    t._storage = storage
    t._view = view
    t._base = base
    t.dtype = dtype
    t._rg = False
    t._grad_fn = None
    t._node = None
    t._node_src = None
    t._retains_grad = False
    t._accum = None
    t._fn_version = 0
    t._detached = False
    t._cut = None  # for a view of a detached tensor: that tensor (see history_base)
    t._view_meta = None  # why a view may not be written in place with grad (see inplace)


def wrap_node(n: Node, device: str = "cpu", order: tuple[int, ...] | None = None) -> Tensor:
    """A new base tensor whose value is node `n` (no autograd record).

    `order`: n is laid out in memory with the tensor's dims in this order
    (outermost first); the tensor reads it through the inverse permutation.
    """
    if n.numel > 1 << 24:  # NOTE: the count alone on the hot path; check_size says more
        check_size(n.shape, n.dtype)
    if order is None:
        t = _new(Storage(n, n.dtype, device), View.contiguous(n.shape), n.dtype, None)
        t._node = n
        t._node_src = n
    else:
        inverse = [0] * len(order)
        for i, d in enumerate(order):
            inverse[d] = i
        view = View.contiguous(n.shape).permute(tuple(inverse))
        t = _new(Storage(n, n.dtype, device), view, n.dtype, None)
        # NOTE: the value as a computation (autograd records it: once eager mode has
        # realised the storage, reading the storage would give a BUFFER instead)
        t._node = b.as_strided(n, view)
        t._node_src = n
    if current().eager:
        realize_storages([t._storage])
    return t


def copy_of(data, dtype=None, device=None) -> Tensor:
    """A new tensor holding a copy of `data` (scalars, nested lists, NumPy arrays,
    tensors): what `em.tensor` makes, before any `requires_grad`."""
    device = check_device(device)
    if isinstance(data, Tensor):
        data = data.detach()
    arr, d = as_array(data, dt.to_dtype(dtype) if dtype is not None else None)
    return from_array(arr, d, device)


def from_array(a: np.ndarray, dtype: dt.DType, device: str = "cpu",
               external: bool = False) -> Tensor:
    """A realised tensor over NumPy array `a` (shared, not copied, when possible).

    `external`: the caller keeps `a`, so in-place updates are written back into it
    (while `a` is writable). On a GPU (`device` "cuda:N") the tensor holds a copy of `a`
    in device memory; `a` may be a device tensor there (kept where it owns its memory).
    """
    if device != "cpu" or not isinstance(a, np.ndarray):
        shape = tuple(a.shape)
        flat = owned(devices.to_memory(a, device))
        return _new(Storage.from_array(flat, dtype, device, shape), View.contiguous(shape),
                    dtype, None)
    if a.flags.c_contiguous:
        storage = Storage.from_array(a.reshape(-1), dtype, device, a.shape)
        if external:
            storage.share(new=True, user_array=a)
        return _new(storage, View.contiguous(a.shape), dtype, None)
    # NOTE: a strided array is shared through a flat view of the memory it spans.
    item = a.itemsize
    strides = tuple(s // item for s in a.strides)
    lo = sum(st * (sz - 1) for st, sz in zip(strides, a.shape) if st < 0)
    if lo < 0 or any(s % item for s in a.strides) or a.size == 0:
        return from_array(np.ascontiguousarray(a), dtype, device)
    span = 1 + sum(st * (sz - 1) for st, sz in zip(strides, a.shape))
    base = np.lib.stride_tricks.as_strided(a, (span,), (item,))
    storage = Storage.from_array(base, dtype, device)
    if external:
        storage.share(new=True, user_array=a)
    return _new(storage, View(tuple(a.shape), strides, 0), dtype, None)


def _short_name(fn) -> str:
    """A record's name as repr shows it: PyTorch's class name, without the namespace
    some records' `name()` has (`torch::autograd::CopyBackwards`)."""
    return fn.name().rpartition("::")[2]


def _identity(t: Tensor):
    """What autograd sees of t: its record, itself for a leaf that requires grad, or None."""
    if not t._requires_grad:
        return None
    return t._grad_fn if t._grad_fn is not None else t


def distinct_nodes(tensors: tuple, raws: tuple) -> tuple:
    """The operands' nodes, made distinct where two tensors with different autograd
    identities read one (hash-consed) node.

    NOTE: `x * x` reads one node twice and that is right; but `y * z` where z is
    y's value computed under no_grad (or a same-shape view of y) would merge two
    operands autograd must tell apart, so the later one reads its value through
    an identity CAST node of its own.
    """
    out = list(raws)
    for j in range(1, len(out)):
        for i in range(j):
            if out[j] is out[i] and _identity(tensors[j]) is not _identity(tensors[i]):
                n = out[j]
                out[j] = node(Op.CAST, (n,), None, n.dtype, n.shape)
                break
    return tuple(out)
