"""Small parts of PyTorch's API: dtype limits (`finfo`, `iinfo`), type tests, type
strings (`Tensor.type`), the legacy constructor `em.Tensor(data)` and the default device.
"""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as dt
from .creation import tensor, zeros
from .device import check_device, default_device, device, set_default
from .tensor import Size, Tensor

__all__ = ["finfo", "iinfo", "is_tensor", "is_floating_point", "set_default_device",
           "get_default_device"]


class finfo:  # noqa: N801 - PyTorch's name
    """The limits of a floating-point dtype (default: the default dtype), as
    `torch.finfo`: `bits`, `eps`, `max`, `min`, `tiny` (= `smallest_normal`),
    `resolution` and `dtype` (its name).

    >>> em.finfo(em.float32).eps
    1.1920928955078125e-07
    >>> em.finfo(em.bfloat16).max
    3.3895313892515355e+38
    """

    def __init__(self, type=None):  # noqa: A002 - PyTorch's argument name
        d = dt.default_float() if type is None else dt.to_dtype(type)
        if not d.is_floating_point:
            raise TypeError("torch.finfo() requires a floating point input type. Use "
                            "torch.iinfo to handle 'torch.finfo'")
        if d is dt.bfloat16:
            self.bits, self.eps, self.max = 16, 2.0 ** -7, float(np.float32(3.3895313892515355e38))
            self.tiny = self.smallest_normal = 2.0 ** -126
            self.resolution = 0.01
        else:
            info = np.finfo(d.np)
            self.bits = info.bits
            self.eps, self.max = float(info.eps), float(info.max)
            self.tiny = self.smallest_normal = float(info.smallest_normal)
            self.resolution = 10.0 ** -int(info.precision)  # NOTE: torch's, exactly
        self.min = -self.max
        self.dtype = d.name

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, "
                f"eps={self.eps:g}, smallest_normal={self.smallest_normal:g}, "
                f"tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:  # noqa: N801 - PyTorch's name
    """The limits of an integer dtype, as `torch.iinfo`: `bits`, `max`, `min`, `dtype`.

    >>> em.iinfo(em.int8).min
    -128
    """

    def __init__(self, type):  # noqa: A002 - PyTorch's argument name
        d = dt.to_dtype(type)
        if d.is_floating_point or d is dt.bool_:
            raise TypeError("torch.iinfo() requires an integer input type. Use torch.finfo to "
                            "handle 'torch.iinfo'")
        info = np.iinfo(d.np)
        self.bits, self.max, self.min = info.bits, int(info.max), int(info.min)
        self.dtype = d.name

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"


def is_tensor(obj) -> bool:
    """Whether `obj` is an ember Tensor.

    >>> em.is_tensor(em.ones(1)), em.is_tensor([1.0])
    (True, False)
    """
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:  # noqa: A002 - PyTorch's argument name
    """Whether `input`'s dtype is a floating-point one.

    >>> em.is_floating_point(em.ones(1)), em.is_floating_point(em.arange(2))
    (True, False)
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"is_floating_point(): argument 'input' must be Tensor, not "
                        f"{type(input).__name__}")
    return input.dtype.is_floating_point


# -- type strings ---------------------------------------------------------------------

_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
               "bfloat16": "BFloat16Tensor", "int64": "LongTensor", "int32": "IntTensor",
               "int16": "ShortTensor", "int8": "CharTensor", "uint8": "ByteTensor",
               "bool": "BoolTensor"}
_BY_TYPE_NAME = {v: k for k, v in _TYPE_NAMES.items()}


def _parse_type(name: str):
    """(dtype, cuda) of a type string: 'torch.FloatTensor', 'ember.cuda.LongTensor', ..."""
    parts = name.split(".")
    if len(parts) in (2, 3) and parts[0] in ("torch", "ember") and \
            parts[-1] in _BY_TYPE_NAME and (len(parts) == 2 or parts[1] == "cuda"):
        return dt.to_dtype(_BY_TYPE_NAME[parts[-1]]), len(parts) == 3
    raise ValueError(f"invalid type: '{name}'")


def type_(self, dtype=None, non_blocking: bool = False, **kwargs):
    """With no argument, the type string PyTorch gives (`'torch.FloatTensor'`); with a
    dtype or such a string (`'torch.LongTensor'`, also spelled `'ember.LongTensor'`),
    this tensor converted to it (self when it already has that dtype).

    >>> em.ones(2).type()
    'torch.FloatTensor'
    >>> em.ones(2).type('torch.LongTensor')
    tensor([1, 1])
    """
    if dtype is None:
        return "torch." + _TYPE_NAMES[self.dtype.name]
    if isinstance(dtype, str) and dtype.count("."):
        d, cuda = _parse_type(dtype)
        if cuda:
            check_device("cuda")
    else:
        d = dt.to_dtype(dtype)
    return self if d is self.dtype else self.to(d)


type_.__name__ = "type"
Tensor.type = type_


# -- the legacy constructor -----------------------------------------------------------

def _tensor_new(cls, *args, **kwargs):
    """The legacy constructor, as `torch.Tensor(...)`: `em.Tensor([1, 2])` is float32,
    `em.Tensor(2, 3)` a 2x3 tensor (zeros; torch leaves it uninitialised)."""
    if cls is not Tensor:  # NOTE: a subclass (a Parameter) builds its own state
        return object.__new__(cls)
    return legacy_new(*args, **kwargs)


def legacy_new(*args, device=None):
    """`em.Tensor(...)` as `torch.Tensor(...)`: float32 values from a sequence or an
    array, an uninitialised (here: zero) tensor of a shape given as ints or an
    `em.Size`, an empty tensor without arguments, or a float32 tensor itself."""
    check_device(device)
    if not args:
        return zeros(0, device=device)
    if len(args) == 1 and isinstance(args[0], Tensor):
        t = args[0]
        if t.dtype is not dt.float32:
            raise TypeError(f"expected Float (got {t.dtype.name.capitalize()})")
        return t.detach()
    if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
        return zeros(*[int(a) for a in args], device=device)
    if len(args) == 1 and isinstance(args[0], Size):
        return zeros(tuple(args[0]), device=device)
    if len(args) == 1:
        return tensor(args[0], dtype=dt.float32, device=device)
    raise TypeError(f"Tensor() takes ints (a shape) or one sequence of values, got "
                    f"{tuple(type(a).__name__ for a in args)}")


Tensor.__new__ = _tensor_new


# -- the default device ---------------------------------------------------------------

def set_default_device(device) -> None:  # noqa: A002 - PyTorch's argument name
    """Set the device new tensors are made on where no `device=` is given ("cpu",
    "cuda", "cuda:N"; None: the CPU), for every thread, as torch's. "cuda" raises where
    no CUDA device is available (`em.cuda.is_available()`)."""
    set_default(check_device(device if device is not None else "cpu"))


def get_default_device():
    """The device new tensors are made on (`device(type='cpu')` unless set).

    >>> em.get_default_device()
    device(type='cpu')
    """
    return device(default_device())
