"""Storages: one flat value per storage, pending (a node) or realised (a buffer).

Every tensor reads a Storage through its View. `Storage.node` is the storage's
current value as a flat 1-D node: the pending computation, or a BUFFER node once
realised. In-place writes are functionalised: the new value is a WRITE node over
the old one, and `version` counts the writes (autograd checks it).

`realize(*tensors)` evaluates the pending nodes behind a set of tensors as one
graph, stores the results in buffers and drops the graph behind them. Nodes that
autograd still holds keep their values in `runtime.realized`, so a backward
pass reads them instead of computing them again.
"""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as dt
from ..ir.node import Node
from ..ir.ops import Op
from ..runtime import buffers as rb
from ..runtime.config import options
from ..runtime.execute import run

__all__ = ["Storage", "realize_storages"]


class Storage:
    """A flat value of `numel` elements of `dtype` on `device`."""

    __slots__ = ("node", "buffer", "version", "dtype", "numel", "device", "pending_writes",
                 "__weakref__")

    def __init__(self, node: Node, dtype: dt.DType, device: str = "cpu",
                 buffer: rb.Buffer | None = None):
        self.node = node
        self.buffer = buffer
        self.version = 0
        self.dtype = dtype
        self.numel = node.shape[0]
        self.device = device
        self.pending_writes = 0

    @classmethod
    def from_array(cls, flat: np.ndarray, dtype: dt.DType, device: str = "cpu") -> Storage:
        buf = rb.Buffer(flat, device)
        return cls(rb.buffer_node(buf, dtype), dtype, device, buf)

    @property
    def is_realized(self) -> bool:
        return self.node.op is Op.BUFFER

    def write(self, new_node: Node) -> None:
        """Replace the storage's value (an in-place write): bump the version."""
        self.node = new_node
        self.version += 1
        self.pending_writes += 1
        if self.pending_writes > options.max_pending_writes:
            realize_storages([self])

    def set_array(self, flat: np.ndarray) -> None:
        """Replace the value by a realised flat array (an in-place write)."""
        self.buffer = rb.Buffer(flat, self.device)
        self.node = rb.buffer_node(self.buffer, self.dtype)
        self.version += 1
        self.pending_writes = 0

    def array(self) -> np.ndarray:
        """The realised flat array (realising first if needed)."""
        if not self.is_realized:
            realize_storages([self])
        return self.buffer.array


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
    outputs = [s.node for s in todo] + list(extra)
    values = run(outputs)
    for s, value in zip(todo, values):
        old = s.node
        flat = rb.owned(value)
        s.buffer = rb.Buffer(flat, s.device)
        s.node = rb.buffer_node(s.buffer, s.dtype)
        s.pending_writes = 0
        rb.realized[old] = flat
    return values[len(todo):]
