"""Buffers: the realised memory behind storages, and where graphs find it.

A `Buffer` owns one flat NumPy array (on the CPU) and a uid; a BUFFER node names
its buffer by that uid, so graphs stay free of data. The registry maps uids to
live buffers weakly: a buffer no tensor holds is freed.

`realized` maps nodes that were computed while autograd still holds them to
their values, so a backward pass reads a printed loss's intermediates instead of
computing them again. Its keys are weak: the entry goes with the node.
"""

from __future__ import annotations

import itertools
import os
import weakref

import numpy as np

from ..ir.node import Node, node, pin
from ..ir.ops import Op

__all__ = ["Buffer", "lookup", "realized", "buffer_node", "owned", "check_size"]

_uids = itertools.count()
realized: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Entry(weakref.ref):
    """A weak reference to a Buffer, with its uid and the id of its memory's root."""

    __slots__ = ("uid", "root")


# uid -> _Entry: the live buffers, for BUFFER nodes (which name theirs by uid)
_registry: dict[int, _Entry] = {}
# id(root array) -> _Entry: which buffer's memory an array is (checked against the root)
_roots: dict[int, _Entry] = {}


def _dead(entry: _Entry) -> None:
    """A buffer died: drop its entries (unless a newer buffer took the key since)."""
    if _registry.get(entry.uid) is entry:
        del _registry[entry.uid]
    if _roots.get(entry.root) is entry:
        del _roots[entry.root]


class Buffer:
    """A flat array in device memory; `array` is 1-D."""

    __slots__ = ("uid", "array", "device", "__weakref__")

    def __init__(self, array: np.ndarray, device: str = "cpu"):
        if array.ndim != 1:
            raise ValueError(f"a Buffer holds a flat array, got shape {array.shape}")
        self.uid = uid = next(_uids)
        self.array = array
        self.device = device
        entry = _Entry(self, _dead)
        entry.uid = uid
        entry.root = root = id(_root(array))
        _registry[uid] = entry
        _roots[root] = entry

    @property
    def nbytes(self) -> int:
        return self.array.nbytes

    def __repr__(self) -> str:
        return f"<Buffer {self.uid} {self.array.dtype}[{self.array.size}] on {self.device}>"


def lookup(uid: int) -> Buffer:
    entry = _registry.get(uid)
    buf = entry() if entry is not None else None
    if buf is None:
        raise RuntimeError(f"buffer {uid} was freed while a graph still reads it")
    return buf


def _root(a: np.ndarray) -> np.ndarray:
    """The array that owns a's memory (the end of its chain of bases)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _in_a_buffer(root: np.ndarray) -> bool:
    ref = _roots.get(id(root))
    buf = ref() if ref is not None else None
    if buf is None:
        _roots.pop(id(root), None)
        return False
    return _root(buf.array) is root


def owned(a: np.ndarray) -> np.ndarray:
    """`a` flattened into memory of its own (never memory another buffer holds).

    A fresh result -- or a reshaped view of one -- is kept as it is; a view of a
    buffer's memory, a read-only or broadcast array, or a small view of a larger
    allocation is copied.
    """
    root = _root(a)
    if (a.flags.c_contiguous and a.flags.writeable and root.base is None
            and root.size == a.size and not _in_a_buffer(root)):
        return a.reshape(-1)
    return np.array(a, order="C").reshape(-1)


def buffer_node(buf: Buffer, dtype, shape: tuple[int, ...] | None = None) -> Node:
    """The BUFFER node that reads `buf` as `dtype`, in `shape` (default: flat).

    The buffer's array is flat; a shaped BUFFER node reads it row-major, so a
    realised result keeps its shape without a reshape node around it.
    """
    n = node(Op.BUFFER, (), buf.uid, dtype, (buf.array.size,) if shape is None else shape)
    pin(n, buf)  # a pending graph never loses its inputs
    return n


def _machine_bytes() -> int | None:
    """The machine's memory in bytes, physical and swap (None where the OS does not say).

    NOTE: what Linux's default overcommit rule lets one allocation have at most.
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("SwapTotal:"):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return total


MACHINE_BYTES = _machine_bytes()
_INT64_MAX = 2**63 - 1


def _human(nbytes: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.2f} {unit}" if unit != "bytes" else f"{nbytes} bytes"
        nbytes /= 1024
    return ""  # pragma: no cover


def check_size(shape: tuple[int, ...], dtype) -> None:
    """Refuse, before anything is built or allocated, a tensor no buffer could hold.

    As torch: an element or byte count beyond 64 bits is a RuntimeError naming the
    sizes; more bytes than the machine has is a MemoryError naming them (torch raises
    when it fails to allocate; a lazy ember tensor would otherwise fail, or run for
    hours over a broadcast constant, only when computed).
    """
    numel = span = 1
    for s in shape:
        numel *= s
        span *= max(s, 1)  # NOTE: strides count as if empty dims had size 1, as torch's
    nbytes = numel * dtype.np.itemsize
    if span * dtype.np.itemsize > _INT64_MAX:
        raise RuntimeError(f"Storage size calculation overflowed with sizes={list(shape)}: "
                           f"a {dtype.name} tensor of that shape needs more than 2**63 bytes")
    if MACHINE_BYTES is not None and nbytes > MACHINE_BYTES:
        raise MemoryError(f"cannot allocate a tensor of shape {list(shape)} and dtype "
                          f"{dtype.name}: it needs {nbytes} bytes ({_human(nbytes)}), more than "
                          f"this machine's memory ({_human(MACHINE_BYTES)})")
