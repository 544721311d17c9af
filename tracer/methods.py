"""Tensor methods and operators, attached from the functional modules.

`t.add(y)`, `t + y`, `t.sum(0)`, `t.view(2, 3)`, `t.add_(y)`: each method is the
function of the same name with the tensor as its first argument; this module
only wires them onto `Tensor` and adds conversions (`to`, `float`, `clone`,
`detach`, ...), which need no module of their own.
"""

from __future__ import annotations

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, node
from ..ir.ops import Op
from . import (
    autograd,
    creation,
    elementwise,
    indexing,
    inplace,
    mathops,
    reductions,
    scans,
    scatter,
    sets,
    shape,
)
from .arguments import numpy_names
from .device import check_device
from .elementwise import laid_out
from .tensor import Tensor, _new, result

_FUNCTION_METHODS = {
    elementwise: [n for n in elementwise.__all__ if n not in (
        "broadcast_shapes", "as_operand", "where")],
    reductions: [n for n in reductions.__all__],
    shape: [n for n in shape.__all__ if n not in ("cat", "concat", "stack")],
    indexing: ["index_select", "masked_fill", "gather", "nonzero"],
    mathops: mathops.__all__,
    scans: scans.__all__,
    scatter: scatter.__all__,
    sets: ["unique", "bincount"],
    creation: ["diag"],
}

for _module, _names in _FUNCTION_METHODS.items():
    for _name in _names:
        setattr(Tensor, _name, numpy_names(getattr(_module, _name)))

for _name in inplace.INPLACE_METHODS:
    _module = next(m for m in (elementwise, mathops, scans, scatter, indexing) if hasattr(m, _name))
    setattr(Tensor, _name + "_", inplace._make_inplace(_name, _module))

Tensor.copy_ = inplace.copy_
Tensor.fill_ = inplace.fill_
Tensor.zero_ = inplace.zero_
Tensor.__getitem__ = indexing.getitem
Tensor.__setitem__ = indexing.setitem


def _where(self, condition, other):
    """Method form of `em.where`: `self.where(condition, other)` is
    `em.where(condition, self, other)`, self where condition holds, else other.

    >>> em.tensor([1.0, 2.0, 3.0]).where(em.tensor([True, False, True]), 0.0)
    tensor([1., 0., 3.])
    """
    return elementwise.where(condition, self, other)


Tensor.where = _where


def _swap(fn):
    def reflected(self, other):
        return fn(other, self)
    return reflected


def _inplace_operator(name):
    method = getattr(Tensor, name)

    def op(self, other):
        return method(self, other)
    return op


_OPERATORS = {
    "__add__": elementwise.add, "__radd__": _swap(elementwise.add),
    "__sub__": elementwise.sub, "__rsub__": _swap(elementwise.sub),
    "__mul__": elementwise.mul, "__rmul__": _swap(elementwise.mul),
    "__truediv__": elementwise.div, "__rtruediv__": _swap(elementwise.div),
    "__floordiv__": elementwise.floor_divide, "__rfloordiv__": _swap(elementwise.floor_divide),
    "__mod__": elementwise.remainder, "__rmod__": _swap(elementwise.remainder),
    "__pow__": elementwise.pow, "__rpow__": _swap(elementwise.pow),
    "__matmul__": shape.matmul, "__rmatmul__": _swap(shape.matmul),
    "__and__": elementwise.bitwise_and, "__rand__": _swap(elementwise.bitwise_and),
    "__or__": elementwise.bitwise_or, "__ror__": _swap(elementwise.bitwise_or),
    "__xor__": elementwise.bitwise_xor, "__rxor__": _swap(elementwise.bitwise_xor),
    "__lshift__": mathops.bitwise_left_shift,
    "__rlshift__": _swap(mathops.bitwise_left_shift),
    "__rshift__": mathops.bitwise_right_shift,
    "__rrshift__": _swap(mathops.bitwise_right_shift),
    "__eq__": elementwise.eq, "__ne__": elementwise.ne, "__lt__": elementwise.lt,
    "__le__": elementwise.le, "__gt__": elementwise.gt, "__ge__": elementwise.ge,
    "__neg__": elementwise.neg, "__abs__": elementwise.abs,
    "__invert__": elementwise.bitwise_not,
    "__iadd__": _inplace_operator("add_"), "__isub__": _inplace_operator("sub_"),
    "__imul__": _inplace_operator("mul_"), "__itruediv__": _inplace_operator("div_"),
    "__ifloordiv__": _inplace_operator("floor_divide_"),
    "__imod__": _inplace_operator("remainder_"),
    "__ilshift__": _inplace_operator("bitwise_left_shift_"),
    "__irshift__": _inplace_operator("bitwise_right_shift_"),
}
for _name, _fn in _OPERATORS.items():
    setattr(Tensor, _name, _fn)


def _pos(self):
    return self


Tensor.__pos__ = _pos
Tensor.__hash__ = lambda self: id(self)  # __eq__ is elementwise, identity hashes


# -- conversions ------------------------------------------------------------------

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
def T(self) -> Tensor:
    return shape.permute(self, *reversed(range(self.ndim)))


@property
def mT(self) -> Tensor:
    return shape.transpose(self, -2, -1)


@property
def data(self) -> Tensor:
    return detach(self)


def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate the gradient of this tensor into the leaves' `.grad` (see PyTorch)."""
    autograd.backward(self, gradient, retain_graph, create_graph, inputs)


def retain_grad(self) -> None:
    """Keep this non-leaf tensor's gradient in `.grad` after backward()."""
    autograd.retain_grad(self)


def new_tensor(self, data, dtype=None, requires_grad=False):
    """`em.tensor(data)` of self's dtype (unless `dtype` is given) and device.

    >>> em.tensor([1, 2]).new_tensor([3, 4])
    tensor([3, 4])
    """
    from .creation import tensor
    return tensor(data, dtype or self.dtype, self._storage.device, requires_grad)


def new_zeros(self, *size, dtype=None, requires_grad=False):
    """`em.zeros(*size)` of self's dtype unless `dtype` is given.

    >>> em.zeros(2, dtype=em.int32).new_zeros(3)
    tensor([0, 0, 0], dtype=ember.int32)
    """
    from .creation import zeros
    return zeros(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)


def new_ones(self, *size, dtype=None, requires_grad=False):
    """`em.ones(*size)` of self's dtype unless `dtype` is given.

    >>> em.zeros(2, dtype=em.int32).new_ones(3)
    tensor([1, 1, 1], dtype=ember.int32)
    """
    from .creation import ones
    return ones(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)


def new_full(self, size, fill_value, dtype=None, requires_grad=False):
    """`em.full(size, fill_value)` of self's dtype unless `dtype` is given.

    >>> em.zeros(1).new_full((2,), 7)
    tensor([7., 7.])
    """
    from .creation import full
    return full(size, fill_value, dtype=dtype or self.dtype, requires_grad=requires_grad)


def is_floating_point(self) -> bool:
    """Whether self's dtype is a floating-point one (float16, bfloat16, float32, float64)."""
    return self.dtype.is_floating_point


for _fn in (type_as, cpu, cuda, clone, detach, detach_, backward, retain_grad, new_tensor,
            new_zeros, new_ones, new_full, is_floating_point):
    setattr(Tensor, _fn.__name__, _fn)
Tensor.T = T
Tensor.mT = mT
Tensor.data = data
