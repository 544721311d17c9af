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
import weakref

import numpy as np

from ..ir.node import Node, node
from ..ir.ops import Op

__all__ = ["Buffer", "lookup", "realized", "buffer_node", "owned"]

_uids = itertools.count()
_registry: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
realized: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# NOTE: a BUFFER node names its buffer by uid only; this pins the buffer for as
# long as the node lives, so a pending graph never loses its inputs.
_pins: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Buffer:
    """A flat array in device memory; `array` is 1-D."""

    __slots__ = ("uid", "array", "device", "__weakref__")

    def __init__(self, array: np.ndarray, device: str = "cpu"):
        if array.ndim != 1:
            raise ValueError(f"a Buffer holds a flat array, got shape {array.shape}")
        self.uid = next(_uids)
        self.array = array
        self.device = device
        _registry[self.uid] = self
        key = id(_root(array))
        _roots[key] = weakref.ref(self, lambda ref, key=key: _forget(key, ref))

    @property
    def nbytes(self) -> int:
        return self.array.nbytes

    def __repr__(self) -> str:
        return f"<Buffer {self.uid} {self.array.dtype}[{self.array.size}] on {self.device}>"


def lookup(uid: int) -> Buffer:
    try:
        return _registry[uid]
    except KeyError:
        raise RuntimeError(f"buffer {uid} was freed while a graph still reads it") from None


def _root(a: np.ndarray) -> np.ndarray:
    """The array that owns a's memory (the end of its chain of bases)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


# id(root array) -> the Buffer whose memory it is (checked against the root on use)
_roots: dict[int, weakref.ref] = {}


def _forget(key: int, ref: weakref.ref) -> None:
    """A buffer died: drop its entry (unless another buffer took the key since)."""
    if _roots.get(key) is ref:
        del _roots[key]


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


def buffer_node(buf: Buffer, dtype) -> Node:
    """The BUFFER node that reads `buf` (flat, of `dtype`)."""
    n = node(Op.BUFFER, (), buf.uid, dtype, (buf.array.size,))
    _pins[n] = buf
    return n
