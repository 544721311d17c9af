"""Tensor conversions: `to`, `float`, `double`, ..., `clone`, `detach`, `new_zeros`, ...

The methods that are operations (`t.add(y)`, `t + y`, `t.sum(0)`, `t.view(2, 3)`,
`t.add_(y)`, `t[i]`) are bound where each operation is defined (elementwise.py,
reductions.py, shape.py, indexing.py, inplace.py, autograd.py); these need no
module of their own.
"""

from __future__ import annotations

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, node
from ..ir.ops import Op
from ..runtime.context import current
from . import creation
from .device import check_device
from .elementwise import laid_out
from .records import result
from .storage import realize_storages
from .tensor import Tensor, _new


def to(self, *args, dtype=None, device=None, copy: bool = False, non_blocking=False):
    """`t.to(dtype)`, `t.to(device)`, `t.to(other)` or `t.to(device, dtype)`."""
    for a in args:
        if isinstance(a, Tensor):
            dtype, device = a.dtype, a._storage.device
        elif isinstance(a, (dt.DType, type)) or (isinstance(a, str) and a in (
                "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16",
                "int8", "uint8", "bool")):
            dtype = a
        elif a is not None:
            device = a
    target = dt.to_dtype(dtype) if dtype is not None else self.dtype
    dev = check_device(device) if device is not None else self._storage.device
    if target is self.dtype and dev == self._storage.device and not copy:
        return self
    if dev != self._storage.device and not self._storage.is_realized \
            and current().trace is None:
        # NOTE: the pending work is done where it was asked for (a GPU's kernels), then
        # copied: the copy's graph reads the realised buffer, from the other device
        realize_storages([self._storage])
    raw = self.node
    order, (n,) = laid_out((self,), (raw,))  # PyTorch's preserve_format
    n = b.cast(n, target) if target is not self.dtype else copy_node(n)
    return result(n, (self,), "ToCopyBackward0", (raw,), dev, order=order)


def _cast_method(dtype):
    def method(self):
        return to(self, dtype)
    method.__name__ = dtype.name
    method.__doc__ = f"`self.to(ember.{dtype.name})`."
    return method


Tensor.to = to
Tensor.float = _cast_method(dt.float32)
Tensor.double = _cast_method(dt.float64)
Tensor.half = _cast_method(dt.float16)
Tensor.bfloat16 = _cast_method(dt.bfloat16)
Tensor.long = _cast_method(dt.int64)
Tensor.int = _cast_method(dt.int32)
Tensor.short = _cast_method(dt.int16)
Tensor.char = _cast_method(dt.int8)
Tensor.byte = _cast_method(dt.uint8)
Tensor.bool = _cast_method(dt.bool_)


def type_as(self, other: Tensor) -> Tensor:
    """`self.to(other.dtype)`: self cast to other's dtype (self itself if it has it).

    >>> em.tensor([1, 2]).type_as(em.zeros(1))
    tensor([1., 2.])
    """
    return to(self, other.dtype)


def cpu(self) -> Tensor:
    """`self.to("cpu")`: self on the CPU (self itself if it is there)."""
    return to(self, device="cpu")


def cuda(self, device=None) -> Tensor:
    """`self.to(device or "cuda")`: a copy on the CUDA device (an error where none is
    available; see `em.cuda.is_available()`).
    """
    return to(self, device=device or "cuda")


def copy_node(raw: Node) -> Node:
    """A node with `raw`'s value that is not a realised buffer itself.

    NOTE: a new storage must not take over another storage's BUFFER node: it would look
    realised without holding a buffer. A same-dtype CAST is an explicit copy.
    """
    if raw.op is Op.BUFFER:
        return node(Op.CAST, (raw,), None, raw.dtype, raw.shape)
    return raw


def clone(self) -> Tensor:
    """A copy with its own storage (differentiable), laid out as self is (PyTorch's
    preserve_format: the copy of a transposed tensor is transposed)."""
    raw = self.node
    order, (n,) = laid_out((self,), (raw,))
    return result(copy_node(n), (self,), "CloneBackward0", (raw,), order=order)


def detach(self) -> Tensor:
    """The same storage, cut from autograd's history."""
    t = _new(self._storage, self._view, self.dtype, self._base)
    t._detached = True
    return t


def detach_(self) -> Tensor:
    """Cut self from autograd's history in place: it becomes a leaf that does not
    require grad. Returns self.
    """
    self._grad_fn = None
    self._requires_grad = False
    return self


@property
def data(self) -> Tensor:
    return detach(self)


def new_tensor(self, data, dtype=None, requires_grad=False):
    """`em.tensor(data)` of self's dtype (unless `dtype` is given) and device.

    >>> em.tensor([1, 2]).new_tensor([3, 4])
    tensor([3, 4])
    """
    return creation.tensor(data, dtype or self.dtype, self._storage.device, requires_grad)


def new_zeros(self, *size, dtype=None, requires_grad=False):
    """`em.zeros(*size)` of self's dtype unless `dtype` is given.

    >>> em.zeros(2, dtype=em.int32).new_zeros(3)
    tensor([0, 0, 0], dtype=ember.int32)
    """
    return creation.zeros(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)


def new_ones(self, *size, dtype=None, requires_grad=False):
    """`em.ones(*size)` of self's dtype unless `dtype` is given.

    >>> em.zeros(2, dtype=em.int32).new_ones(3)
    tensor([1, 1, 1], dtype=ember.int32)
    """
    return creation.ones(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)


def new_full(self, size, fill_value, dtype=None, requires_grad=False):
    """`em.full(size, fill_value)` of self's dtype unless `dtype` is given.

    >>> em.zeros(1).new_full((2,), 7)
    tensor([7., 7.])
    """
    return creation.full(size, fill_value, dtype=dtype or self.dtype, requires_grad=requires_grad)


def is_floating_point(self) -> bool:
    """Whether self's dtype is a floating-point one (float16, bfloat16, float32, float64)."""
    return self.dtype.is_floating_point


for _fn in (type_as, cpu, cuda, clone, detach, detach_, new_tensor,
            new_zeros, new_ones, new_full, is_floating_point):
    setattr(Tensor, _fn.__name__, _fn)
Tensor.data = data
