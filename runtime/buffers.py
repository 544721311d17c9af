"""Buffers: the realised memory behind storages, and where graphs find it.

A `Buffer` owns one flat NumPy array (on the CPU) and a uid; a BUFFER node names
its buffer by that uid, so graphs stay free of data. The registry maps uids to
live buffers weakly: a buffer no tensor holds is freed.

`realized` maps nodes that were computed while autograd still holds them to
their values, so a backward pass reads a printed loss's intermediates instead of
computing them again; also the matrix products a realisation computed (each a
buffer pinned to its node, runtime/compiled.py `_keep`). Its keys are weak: the
entry goes with the node.

A buffer is *shared* (`share`) when the user holds its memory as a NumPy array
(`em.from_numpy`, `Tensor.numpy()`): NumPy can change those bytes behind ember's
back, and a node over the buffer names it by uid, not by what it held, so no value
computed from a shared buffer may be kept in `realized` (`reads_shared` says which
are), and sharing a buffer forgets the kept values computed from it.
"""

from __future__ import annotations

import itertools
import os
import weakref
from contextlib import contextmanager

import numpy as np

from ..ir.node import Node, node, pin
from ..ir.ops import Op
from . import devices

__all__ = ["Buffer", "lookup", "realized", "buffer_node", "owned", "check_size", "reads_shared",
           "share", "share_more", "unshare", "shares_memory", "lend", "read_known_from_buffers"]

_uids = itertools.count()
realized: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Entry(weakref.ref):
    """A weak reference to a Buffer, with its uid and the id of its memory's root."""

    __slots__ = ("uid", "root")


# uid -> _Entry: the live buffers, for BUFFER nodes (which name theirs by uid)
_registry: dict[int, _Entry] = {}
# id(root array) -> _Entry: which buffer's memory an array is (checked against the root)
_roots: dict[int, _Entry] = {}
# uids of the live buffers whose memory the user shares as a NumPy array
_shared: set[int] = set()
# nodes `lend` made known for a while: values read from shared memory, kept no longer
_lent: set = set()


def _dead(entry: _Entry) -> None:
    """A buffer died: drop its entries (unless a newer buffer took the key since)."""
    if _registry.get(entry.uid) is entry:
        del _registry[entry.uid]
    if _roots.get(entry.root) is entry:
        del _roots[entry.root]
    _shared.discard(entry.uid)


class Buffer:
    """A flat array in device memory; `array` is 1-D."""

    __slots__ = ("uid", "array", "device", "__weakref__")

    def __init__(self, array, device: str = "cpu"):
        if array.ndim != 1:
            raise ValueError(f"a Buffer holds a flat array, got shape {tuple(array.shape)}")
        self.uid = uid = next(_uids)
        self.array = array
        self.device = device
        entry = _Entry(self, _dead)
        entry.uid = uid
        entry.root = root = _root_key(array)
        _registry[uid] = entry
        _roots[root] = entry

    @property
    def nbytes(self) -> int:
        return self.array.nbytes

    @property
    def size(self) -> int:
        """The number of elements (a NumPy array's `size`, a device tensor's `numel()`)."""
        a = self.array
        return a.size if isinstance(a, np.ndarray) else a.numel()

    def host(self) -> np.ndarray:
        """The flat value as a NumPy array: the array itself on the CPU, a copy of device
        memory (`runtime.devices.download`) on a GPU."""
        a = self.array
        return a if isinstance(a, np.ndarray) else devices.download(a)

    def __repr__(self) -> str:
        return f"<Buffer {self.uid} {self.array.dtype}[{self.array.size}] on {self.device}>"


def lookup(uid: int) -> Buffer:
    entry = _registry.get(uid)
    buf = entry() if entry is not None else None
    if buf is None:
        raise RuntimeError(f"buffer {uid} was freed while a graph still reads it")
    return buf


def _root_key(a) -> object:
    """The key of a's memory in `_roots`: its root array's id (NumPy), or ("device", the
    address of its storage) for device memory."""
    if isinstance(a, np.ndarray):
        return id(_root(a))
    return ("device", a.untyped_storage().data_ptr())


def host(a):
    """A value as NumPy reads it: a device tensor's copy in host memory, else `a`."""
    return devices.download(a) if devices.is_device_array(a) else a


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
    allocation is copied. Device memory likewise (`_owned_on_device`).
    """
    if not isinstance(a, np.ndarray):
        return _owned_on_device(a)
    root = _root(a)
    if (a.flags.c_contiguous and a.flags.writeable and root.base is None
            and root.size == a.size and not _in_a_buffer(root)):
        return a.reshape(-1)
    return np.array(a, order="C").reshape(-1)


def _owned_on_device(t):
    """Device tensor `t` flattened into memory of its own: itself where it is all of a
    storage no buffer holds, else a contiguous copy."""
    st = t.untyped_storage()
    entry = _roots.get(("device", st.data_ptr()))
    if (entry is None or entry() is None) and t.is_contiguous() and t.storage_offset() == 0 \
            and st.nbytes() == t.nbytes:
        return t.reshape(-1)
    return t.reshape(-1).clone()


def buffer_node(buf: Buffer, dtype, shape: tuple[int, ...] | None = None) -> Node:
    """The BUFFER node that reads `buf` as `dtype`, in `shape` (default: flat).

    The buffer's array is flat; a shaped BUFFER node reads it row-major, so a
    realised result keeps its shape without a reshape node around it.
    """
    n = node(Op.BUFFER, (), buf.uid, dtype, (buf.size,) if shape is None else shape)
    pin(n, buf)  # a pending graph never loses its inputs
    return n


def _buffer_holding(value: np.ndarray, dtype) -> Buffer | None:
    """The live buffer whose memory is exactly `value` (all of it, as `dtype`), if any.

    NOTE: never a buffer NumPy shares: the user may change its bytes. Other buffers'
    arrays are never written after they are made (a new value gets a new buffer).
    """
    if not isinstance(value, np.ndarray):
        entry = _roots.get(_root_key(value))
        buf = entry() if entry is not None else None
        if buf is None or not value.is_contiguous() or value.dtype != buf.array.dtype \
                or value.dtype != devices.torch_dtype(dtype.np) \
                or value.data_ptr() != buf.array.data_ptr() \
                or value.numel() != buf.array.numel():
            return None
        return buf
    root = _root(value)
    entry = _roots.get(id(root))
    buf = entry() if entry is not None else None
    if buf is None or buf.uid in _shared:
        return None
    a = buf.array
    # NOTE: two C-contiguous arrays as large as the root they view are the whole root
    if (_root(a) is not root or value.dtype != dtype.np or a.dtype != value.dtype
            or a.nbytes != root.nbytes or value.nbytes != root.nbytes
            or not (value.flags.c_contiguous and a.flags.c_contiguous)):
        return None
    return buf


def read_known_from_buffers(roots: tuple[Node, ...]) -> tuple[Node, ...]:
    """`roots` with each kept node (see `realized`) whose value is a live buffer's memory
    replaced by that buffer's BUFFER node; only the nodes above a replacement are rebuilt.

    The values are the same; the graph no longer holds the computation a kept value came
    from. NOTE: a training loop that updates a parameter in place (`w.sub_(lr * g)`) builds
    the update from last step's pending update, now a kept value that is the parameter's
    buffer: without this, each update held the previous one, a chain one step longer each
    step. The walk stops at kept values, so it visits only this step's work.
    """
    known = realized.data
    if not known:
        return roots
    ref = weakref.ref
    walked = _walked.data  # NOTE: the WeakSet's own set: its `in` is a Python call
    memo: dict[Node, Node] = {}
    stack = [(r, False) for r in roots]
    while stack:
        n, done = stack.pop()
        ins = n.inputs
        if done:
            new = tuple([memo[i] for i in ins])
            for a, i in zip(new, ins):
                if a is not i:
                    memo[n] = node(n.op, new, n.arg, n.dtype, n.shape)
                    break
            else:
                memo[n] = n
            continue
        if n in memo:
            continue
        if not ins:
            memo[n] = n
            continue
        r = ref(n)
        value = known.get(r)
        if value is not None:
            buf = None if n in _lent else _buffer_holding(value, n.dtype)
            memo[n] = n if buf is None else buffer_node(buf, n.dtype, n.shape)
            continue
        if r in walked:
            memo[n] = n
            continue
        stack.append((n, True))
        stack.extend([(i, False) for i in ins if i not in memo])
    out = tuple([memo[r] for r in roots])
    for n in out:
        if n.inputs:
            _walked.add(n)
    return out


# Results of `read_known_from_buffers`: a later walk stops at them (unless kept since).
# NOTE: a write builds on the storage's last pending write; without this stop, a run of
# writes walked every earlier one again. A value kept below one of them since is missed:
# it is computed again, once, when that storage is realised.
_walked: weakref.WeakSet = weakref.WeakSet()


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
# ---------------------------------------------------------------- memory NumPy shares


def share(buf: Buffer, new: bool = False) -> None:
    """Mark `buf`'s memory as shared with a NumPy array the user holds.

    Kept values that were computed from `buf`, or that are its memory, are forgotten:
    from now on NumPy may change those bytes. `new`: no node has read `buf` yet, so
    only the second kind can exist.
    """
    if buf.uid in _shared:
        return
    _shared.add(buf.uid)
    if not realized:
        return
    seen: set = set()
    # NOTE: the dict under the weak keys, copied in one step (other threads may add to it)
    for key, value in list(realized.data.items()):
        n = key()
        if n is not None and (np.may_share_memory(value, buf.array) or (
                not new and _reads((n,), seen, stop_at_known=False))):
            realized.data.pop(key, None)


def shares_memory() -> bool:
    """Whether the user holds the memory of any live buffer as a NumPy array."""
    return bool(_shared)


def share_more(buf: Buffer) -> None:
    """Mark new buffer `buf` shared: its memory is shared already, so nothing kept
    was computed from it or is it."""
    _shared.add(buf.uid)


def unshare(buf: Buffer) -> None:
    """`buf` no longer holds memory NumPy shares (it got a private copy)."""
    _shared.discard(buf.uid)


def reads_shared(n: Node, seen: set) -> bool:
    """Whether computing node `n` reads a shared buffer.

    `seen`: nodes already found not to (share it across calls over one live graph).
    NOTE: the walk stops at kept values: none of them reads a shared buffer.
    """
    return bool(_shared) and _reads((n,), seen, stop_at_known=True)


def _reads(roots, seen: set, stop_at_known: bool) -> bool:
    """Whether a shared buffer is below `roots`; on False, adds the nodes walked to `seen`."""
    walked: set = set()
    stack = list(roots)
    known = realized.data if stop_at_known else None
    ref = weakref.ref
    buffer, shared = Op.BUFFER, _shared
    while stack:
        n = stack.pop()
        if n in walked or n in seen:
            continue
        walked.add(n)
        ins = n.inputs
        if ins:
            if not (known and ref(n) in known) or n in _lent:
                stack.extend(ins)
        elif n.op is buffer and n.arg in shared:
            return True
    seen |= walked
    return False


@contextmanager
def lend(values: dict):
    """Make `values` (node -> array) known, as `realized`, for the block's computations.

    NOTE: a backward pass reads the forward values it was recorded with, as torch saves
    them, also those computed from memory NumPy shares (never kept in `realized`: a
    forward expression rebuilt after a NumPy write reads that memory again).
    """
    added = []
    for n, value in values.items():
        if n not in realized:
            realized[n] = value
            _lent.add(n)
            added.append((n, value))
    try:
        yield
    finally:
        for n, value in added:
            _lent.discard(n)
            if realized.get(n) is value:
                realized.pop(n, None)
