"""Devices: `em.device("cpu")`, `"cuda:0"`, and `em.cuda.is_available()`.

The CPU is always there. A CUDA device needs triton and a CUDA build of torch
(runtime/ uses torch only to allocate GPU memory, copy it and launch kernels; see
runtime/devices.py, which can also emulate the device for tests without a GPU).
"""

from __future__ import annotations

from ..runtime import devices

__all__ = ["device", "check_device", "cuda_available", "default_device", "device_count",
           "set_default"]


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
    """`em.cuda.is_available()`: whether ember can make "cuda" tensors here."""
    return devices.available()


def device_count() -> int:
    """`em.cuda.device_count()`: the number of CUDA devices (0 without one)."""
    return devices.count() if devices.available() else 0


# the device tensors are made on where no device is given (`em.set_default_device`)
_DEFAULT = ["cpu"]


def default_device() -> str:
    return _DEFAULT[0]


def set_default(device: str) -> None:
    """Make `device` (checked: "cpu" or "cuda:N") the default device."""
    _DEFAULT[0] = device


def check_device(spec) -> str:
    """Normalise a device argument to "cpu" or "cuda:N" (None: the default device,
    `em.set_default_device`); refuse CUDA without a GPU."""
    if spec is None:
        return _DEFAULT[0]
    if spec == "cpu":
        return "cpu"
    if isinstance(spec, int):
        spec = f"cuda:{spec}"  # NOTE: torch reads a bare ordinal as a CUDA device
    d = device(spec)
    if d.type == "cpu":
        return "cpu"
    if not cuda_available():
        raise RuntimeError("Found no NVIDIA driver on your system: no CUDA device is "
                           "available to ember (em.cuda.is_available() is False); create the "
                           "tensor on the CPU")
    index = d.index or 0
    if index >= devices.count():
        raise RuntimeError(f"CUDA error: invalid device ordinal (cuda:{index}; this machine "
                           f"has {devices.count()} CUDA device(s))")
    return f"cuda:{index}"
