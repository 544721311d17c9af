"""Storages: one flat value per storage, pending (a node) or realised (a buffer).

Every tensor reads a Storage through its View. `Storage.node` is the storage's
current value in row-major order: the pending computation (of any shape with
`numel` elements: a result keeps the shape it was computed in, so reading it
back costs no reshape), or a flat BUFFER node once realised. In-place writes
are functionalised: the new value is a WRITE node over the old one, and
`version` counts the writes (autograd checks it).

`realize(*tensors)` evaluates the pending nodes behind a set of tensors as one
graph, stores the results in buffers and drops the graph behind them. Nodes that
autograd still holds keep their values in `runtime.realized`, so a backward
pass reads them instead of computing them again.
"""

from __future__ import annotations

import weakref
from math import prod

import numpy as np

from ..ir import dtypes as dt
from ..ir.node import Node
from ..runtime import buffers as rb
from ..runtime.config import options
from ..runtime.execute import run

__all__ = ["Storage", "commit", "realize_storages", "tracing"]

# The trace em.compile is recording, if any (see tracer/compile.py): while it is
# set, a realisation that reads a placeholder is a graph break.
tracing: list = [None]


class Storage:
    """A flat value of `numel` elements of `dtype` on `device`.

    `external` storages share memory with an array the user holds (`from_numpy`,
    `numpy()`): their in-place updates are written into that same memory, as
    PyTorch's are. Other storages get a fresh buffer each time they are realised.
    """

    __slots__ = ("node", "buffer", "own", "version", "dtype", "numel", "device",
                 "pending_writes", "external", "__weakref__")

    def __init__(self, node: Node, dtype: dt.DType, device: str = "cpu",
                 buffer: rb.Buffer | None = None):
        self.node = node
        self.buffer = buffer
        self.own = node if buffer is not None else None  # the BUFFER node of `buffer`
        self.version = 0
        self.dtype = dtype
        self.numel = prod(node.shape)
        self.device = device
        self.pending_writes = 0
        self.external = False

    @classmethod
    def from_array(cls, flat: np.ndarray, dtype: dt.DType, device: str = "cpu",
                   shape: tuple[int, ...] | None = None) -> Storage:
        """A realised storage over `flat`, read as `shape` (default: flat)."""
        buf = rb.Buffer(flat, device)
        return cls(rb.buffer_node(buf, dtype, shape), dtype, device, buf)

    @property
    def is_realized(self) -> bool:
        # NOTE: identity, not op: after a full write a storage's node can be the
        # BUFFER node of another storage's buffer, which this storage does not own.
        return self.node is self.own

    def write(self, new_node: Node) -> None:
        """Replace the storage's value (an in-place write): bump the version."""
        self.node = new_node
        self.version += 1
        self.pending_writes += 1
        if self.pending_writes > options.max_pending_writes and tracing[0] is None:
            realize_storages([self])

    def set_array(self, flat: np.ndarray) -> None:
        """Replace the value by a realised flat array (an in-place write)."""
        self._adopt(rb.Buffer(flat, self.device), self.node.shape)
        self.version += 1

    def assign(self, flat: np.ndarray) -> None:
        """Set the whole value to `flat` (an in-place write, realised at once)."""
        self.node = None
        _store(self, np.asarray(flat, dtype=self.dtype.np).reshape(-1))
        self.version += 1

    def _adopt(self, buf: rb.Buffer, shape: tuple[int, ...] | None = None) -> None:
        self.buffer = buf
        self.own = self.node = rb.buffer_node(buf, self.dtype, shape)
        self.pending_writes = 0

    def array(self) -> np.ndarray:
        """The realised flat array (realising first if needed)."""
        if not self.is_realized:
            realize_storages([self])
        return self.buffer.array


def _store(s: Storage, value: np.ndarray, shape: tuple[int, ...] | None = None) -> None:
    """Make `value` (flat) the storage's realised value, read as `shape` (default: flat)."""
    old = s.buffer
    if s.external and old is not None and old.array.shape == value.shape:
        # Write into the memory the user shares. Nodes that still read the old
        # value (pending graphs, autograd records) keep a private copy of it.
        old_node = weakref.ref(s.own)
        s._adopt(rb.Buffer(old.array, s.device), shape)
        if old_node() is not None:
            old.array = old.array.copy()
        _unshare_kept_values(s.buffer.array)
        np.copyto(s.buffer.array, value)
    else:
        s._adopt(rb.Buffer(rb.owned(value), s.device), shape)


def _unshare_kept_values(memory: np.ndarray) -> None:
    """Give every value kept for autograd (`runtime.realized`) that lies in `memory` a
    copy of its own, before `memory` is overwritten.

    NOTE: a storage adopts the array its value was computed in, and that same array is
    kept as the value of the node that computed it; once NumPy shares the storage
    (`numpy()` after the commit), an in-place update is copied into that memory, and the
    kept value would silently change under a node that is reused by structure.
    """
    for n, v in list(rb.realized.items()):
        if isinstance(v, np.ndarray) and np.may_share_memory(v, memory):
            rb.realized[n] = v.copy()


def realize_storages(storages, extra: tuple = ()) -> list[np.ndarray]:
    """Realise `storages` in one graph; also compute the `extra` nodes and return them.

    `extra` nodes are computed in the same run (shared work is done once) but not
    stored anywhere: callers use them for values such as gradients.
    """
    todo = []
    seen = set()
    for s in storages:
        if not s.is_realized and id(s) not in seen:
            seen.add(id(s))
            todo.append(s)
    if not todo and not extra:
        return []
    chains = [s.node for s in todo]
    if tracing[0] is not None:
        from .compile import depends_on_placeholders, graph_break
        if depends_on_placeholders(chains + list(extra)):
            graph_break()
    values = run(chains + list(extra))
    commit(todo, chains, values)
    del chains
    return values[len(todo):]


def commit(storages, chains, values) -> None:
    """Make each value the realised value of its storage, whose pending node was its chain."""
    for s, chain, value in zip(storages, chains, values):
        rb.realized[chain] = value if not s.external else value.copy()
        _store(s, value.reshape(-1), chain.shape)
