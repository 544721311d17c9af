"""Devices: `em.device("cpu")`, `"cuda:0"`, and `em.cuda.is_available()`.

The CPU is always there. A CUDA device needs triton and a CUDA build of torch
(runtime/ uses torch only to allocate GPU memory and launch kernels).
"""

from __future__ import annotations

__all__ = ["device", "check_device", "cuda_available"]


class device:
    """A device name: type ("cpu" or "cuda") and an optional index."""

    __slots__ = ("type", "index")

    def __init__(self, spec, index: int | None = None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device spec must be a string or a device, got "
                            f"{type(spec).__name__}")
        kind, _, idx = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device "
                               f"string: {spec}")
        self.type = kind
        self.index = int(idx) if idx else index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        idx = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{idx})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


def cuda_available() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:
        return False


def check_device(spec) -> str:
    """Normalise a device argument to "cpu" or "cuda:N"; refuse CUDA without a GPU."""
    if spec is None:
        return "cpu"
    d = device(spec)
    if d.type == "cpu":
        return "cpu"
    if not cuda_available():
        raise RuntimeError("no CUDA device is available to ember on this machine "
                           "(em.cuda.is_available() is False): create the tensor on the CPU")
    raise NotImplementedError("ember's GPU path is not built yet: tensors live on the CPU")
