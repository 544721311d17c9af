"""DLPack exchange (`Tensor.__dlpack__`, `em.from_dlpack`) and `Tensor.__format__`.

Exchange is zero-copy and goes through NumPy, the memory ember's CPU buffers live
in: a tensor handed out is realised and its storage marked shared, exactly as
`Tensor.numpy()` does, so a write the other library makes is seen by every value
ember computes after it, and ember's in-place updates are written into the memory
the other library reads. A tensor taken in (`em.from_dlpack`) is shared as
`em.from_numpy` shares an array.

"cuda" tensors are exchanged by copy, in device memory (`runtime.devices`): ember's
device buffers are never written after they are made, which memory another library
holds could not promise.
"""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as dt
from ..runtime import devices
from .creation import from_numpy
from .device import check_device
from .tensor import Tensor, from_array

__all__ = ["from_dlpack"]

_CPU = 1  # DLPack's kDLCPU
_CUDA = 2  # DLPack's kDLCUDA


def _export(t: Tensor) -> np.ndarray:
    """t's memory as a writable NumPy array that stays t's (see `Tensor.numpy`)."""
    if t.dtype is dt.bfloat16:
        raise BufferError("ember holds bfloat16 values as float32 in memory, so a bfloat16 "
                          "tensor cannot be shared through DLPack; convert it with "
                          "t.float() first")
    # NOTE: a tensor that requires grad exports its values (as `np.asarray(t)` does), so
    # `torch.tensor(t)`, which goes through DLPack, works on parameters too
    return t.numpy(force=True)


def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
    """A DLPack capsule of this tensor's memory (no copy), for `np.from_dlpack(t)` or
    `torch.from_dlpack(t)`: the two share memory, and writes through either are seen by
    the other. `stream` must be None (CPU). A tensor that requires grad exports its values
    (the other library sees no autograd history). Raises BufferError for bfloat16 (ember
    holds it as float32)."""
    if self._storage.device != "cpu":
        return devices.dlpack_copy(self._storage.raw(), self._view, stream, max_version)
    if stream is not None and stream != -1:
        raise BufferError("stream must be None for a CPU tensor")
    a = _export(self)
    kwargs = {}
    if max_version is not None:
        kwargs["max_version"] = max_version
    if dl_device is not None:
        kwargs["dl_device"] = dl_device
    if copy is not None:
        kwargs["copy"] = copy
    return a.__dlpack__(**kwargs)


def __dlpack_device__(self) -> tuple[int, int]:
    """(device type, index) as DLPack names them: (1, 0) for the CPU, (2, N) for cuda:N."""
    device = self._storage.device
    if device != "cpu" and not devices.emulated():  # NOTE: emulated memory is the CPU's
        return (_CUDA, int(device.partition(":")[2] or 0))
    return (_CPU, 0)


class _Capsule:
    """A bare DLPack capsule (`torch.utils.dlpack.to_dlpack`) as NumPy's protocol wants."""

    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, **kwargs):
        if kwargs.get("max_version") is not None:
            raise TypeError("a legacy capsule")  # NOTE: makes NumPy ask without max_version
        return self.capsule

    def __dlpack_device__(self):
        return (_CPU, 0)


def from_dlpack(ext) -> Tensor:
    """A tensor sharing memory with `ext`, any object with `__dlpack__` (a NumPy array,
    a torch CPU tensor, ...) or a DLPack capsule; no copy is made, and writes through
    either are seen by the other (see `em.from_numpy`). An ember tensor is returned as it is.

    >>> import numpy as np
    >>> a = np.arange(3.0)
    >>> t = em.from_dlpack(a)
    >>> a[0] = 7
    >>> t
    tensor([7., 1., 2.], dtype=ember.float64)
    """
    if isinstance(ext, Tensor):
        return ext
    where = ext.__dlpack_device__() if hasattr(ext, "__dlpack_device__") else (_CPU, 0)
    if where[0] == _CUDA:
        value = devices.dlpack_import(ext)
        return from_array(value, dt.from_numpy_dtype(devices.numpy_dtype(value.dtype)),
                          check_device(f"cuda:{where[1]}"))
    if type(ext).__name__ == "PyCapsule":
        ext = _Capsule(ext)
    elif not hasattr(ext, "__dlpack__"):
        raise TypeError(f"from_dlpack expects an object with __dlpack__ or a DLPack capsule, "
                        f"got {type(ext).__name__}")
    try:
        a = np.from_dlpack(ext)
    except (BufferError, RuntimeError) as e:  # NOTE: NumPy says RuntimeError for a dtype
        raise BufferError(f"em.from_dlpack cannot share this {type(ext).__name__}'s memory: "
                          f"{e} (ember's CPU tensors hold bool, uint8, int8-64 and float16-64 "
                          "values)") from None
    return from_numpy(a)


def __format__(self, format_spec: str) -> str:
    """`f"{loss:.4f}"`: a 0-d tensor formats its value; any other tensor accepts only the
    empty format (its str), as in PyTorch."""
    if self.ndim == 0:
        return self.item().__format__(format_spec)
    return object.__format__(self, format_spec)


Tensor.__dlpack__ = __dlpack__
Tensor.__dlpack_device__ = __dlpack_device__
Tensor.__format__ = __format__
