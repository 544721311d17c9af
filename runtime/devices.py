"""Device memory: where the buffers of "cuda" tensors live, and moving values to and fro.

A CPU buffer is a flat NumPy array; a CUDA buffer is a flat torch tensor in the GPU's
memory. torch is used here (and in runtime/triton_launch.py) only to allocate device
memory, copy it and wait for the device: ember's kernels compute every value.

Programs run on the device their result lives on (runtime/compiled.py): an input
buffer of another device is copied in at the start of the run (`to_memory`), so a
graph that reads both a CPU and a CUDA buffer (`x.to("cuda")`, an index tensor made on
the CPU) runs correctly wherever it runs.

bfloat16 values are float32 in device memory, as in the CPU's: kernels compute them in
float32 and round after every statement, on both devices alike.

Without a GPU, the CUDA device can be emulated to test this path: `emulate()` (or
`EMBER_CUDA_EMULATE=1`, with `TRITON_INTERPRET=1`) makes "cuda" buffers torch tensors in
the CPU's memory and runs their kernels through Triton's interpreter. Everything else
-- devices of tensors, copies between devices, the programs and their cache -- is what a
GPU gets.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

from .config import options

__all__ = ["all_in", "available", "count", "dlpack_copy", "dlpack_import", "download", "emulate",
           "emulated", "empty", "empty_here", "is_device_array", "numpy_dtype", "on",
           "synchronize", "to_memory", "torch_device", "torch_dtype", "upload"]

# whether "cuda" is emulated in CPU memory (tests; see the module's docstring)
_EMULATED = [options.cuda_emulate]
# how many device buffers were ever made: 0 means no CPU run needs to look for them
made = [0]


def emulated() -> bool:
    """Whether "cuda" buffers are emulated in the CPU's memory (see `emulate`)."""
    return _EMULATED[0]


@contextmanager
def emulate(on: bool = True):
    """Within the block, "cuda" is emulated in the CPU's memory, its kernels run by
    Triton's interpreter (which needs TRITON_INTERPRET=1 before triton's first import).

    NOTE: for tests of the device path on machines without a GPU; tensors made on the
    emulated device must not outlive the block."""
    if on and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("emulating the CUDA device runs its kernels through Triton's "
                           "interpreter: set TRITON_INTERPRET=1 before triton is imported")
    saved = _EMULATED[0]
    _EMULATED[0] = on
    try:
        yield
    finally:
        _EMULATED[0] = saved


def available() -> bool:
    """Whether ember can make "cuda" tensors here: a GPU torch can use and triton, or the
    emulated device."""
    if _EMULATED[0]:
        if os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("EMBER_CUDA_EMULATE=1 runs the emulated device's kernels "
                               "through Triton's interpreter: set TRITON_INTERPRET=1 too")
        return True
    try:
        import torch
        import triton  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def count() -> int:
    """The number of CUDA devices (1 when emulated)."""
    if _EMULATED[0]:
        return 1
    import torch
    return torch.cuda.device_count()


def torch_device(device: str):
    """The torch device holding the buffers of ember's `device` ("cuda:N")."""
    import torch
    if _EMULATED[0]:
        return torch.device("cpu")
    return torch.device(device)


def is_device_array(a) -> bool:
    """Whether `a` is device memory (a torch tensor), not a NumPy array or number."""
    return type(a).__name__ == "Tensor" and hasattr(a, "data_ptr")


_TORCH_DTYPES: dict = {}


def torch_dtype(np_dtype):
    """The torch dtype of a NumPy dtype (device memory's element type)."""
    np_dtype = np.dtype(np_dtype)
    d = _TORCH_DTYPES.get(np_dtype)
    if d is None:
        import torch
        d = _TORCH_DTYPES[np_dtype] = torch.from_numpy(np.empty(0, np_dtype)).dtype
    return d


def empty(shape, np_dtype, device: str):
    """Uninitialised device memory of `shape` and NumPy dtype `np_dtype` on `device`."""
    import torch
    made[0] += 1
    return torch.empty(tuple(shape), dtype=torch_dtype(np.dtype(np_dtype)),
                       device=torch_device(device))


# the device the running program allocates on (`on`)
_CURRENT = ["cuda:0"]


@contextmanager
def on(device: str):
    """Within the block, programs allocate on `device` ("cuda:N") and launch there."""
    saved = _CURRENT[0]
    _CURRENT[0] = device
    try:
        if _EMULATED[0]:
            yield
        else:
            import torch
            with torch.cuda.device(torch.device(device)):
                yield
    finally:
        _CURRENT[0] = saved


def empty_here(shape, np_dtype):
    """`empty` on the device the running program runs on (see `on`)."""
    return empty(shape, np_dtype, _CURRENT[0])


def upload(a, device: str):
    """A copy of array `a` in `device`'s memory (contiguous, of its shape)."""
    import torch
    a = np.ascontiguousarray(a)
    made[0] += 1
    t = torch.from_numpy(a.reshape(-1)).reshape(a.shape)
    # NOTE: emulated memory is the CPU's: a copy, never the array itself, so that the
    # buffer owns its memory as a GPU's would
    return t.to(torch_device(device), copy=True)


def download(t) -> np.ndarray:
    """A NumPy copy of device tensor `t` (waits for the kernels that write it)."""
    return t.detach().to("cpu", copy=True).numpy()


def to_memory(a, device: str):
    """`a` in the memory of `device`: itself where it is there, else a copy."""
    if isinstance(a, np.ndarray):  # NOTE: first: the CPU's arrays are the hot path
        return a if device == "cpu" else upload(a, device)
    if device == "cpu":
        return download(a) if is_device_array(a) else a
    return a if is_device_array(a) else upload(a, device)


def all_in(values: list, device: str) -> list:
    """`values` (a program's inputs) in the memory of `device`: the list itself while no
    device memory was ever made, else each value `to_memory`."""
    return [to_memory(a, device) for a in values] if made[0] else values


def numpy_dtype(torch_dtype) -> np.dtype:
    """The NumPy dtype of a torch dtype (the inverse of `torch_dtype`)."""
    import torch
    return torch.empty(0, dtype=torch_dtype).numpy().dtype


def dlpack_copy(flat, view, stream, max_version):
    """A DLPack capsule of a copy of `view` (a `View`) of device buffer `flat`."""
    t = flat.as_strided(view.shape, view.strides, view.offset).clone()
    kwargs = {} if max_version is None else {"max_version": max_version}
    return t.__dlpack__(stream=stream, **kwargs)


def dlpack_import(ext):
    """A copy, in device memory, of what a DLPack producer on a CUDA device holds."""
    import torch
    return torch.from_dlpack(ext).clone()


def synchronize() -> None:
    """Wait for every kernel launched on the current CUDA device (`em.cuda.synchronize`)."""
    if _EMULATED[0] or not available():
        return
    import torch
    torch.cuda.synchronize()
