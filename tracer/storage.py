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

Memory shared with NumPy (`external` storages: `em.from_numpy`, `Tensor.numpy()`)
can change behind ember's back, so a value computed from it is never kept for
reuse: every realisation reads that memory as it is then (see runtime/buffers.py).
"""

from __future__ import annotations

import weakref
from math import prod

import numpy as np

from ..ir import dtypes as dt
from ..ir.node import Node
from ..runtime import buffers as rb
from ..runtime import devices
from ..runtime.config import options
from ..runtime.context import current
from ..runtime.execute import run

__all__ = ["Storage", "commit", "realize_storages"]


class Storage:
    """A flat value of `numel` elements of `dtype` on `device`.

    `external` storages share memory with an array the user holds (`from_numpy`,
    `numpy()`; set by `share`): their in-place updates are written into that same
    memory, as PyTorch's are. Other storages get a fresh buffer each time they are
    realised.
    """

    __slots__ = ("node", "buffer", "own", "version", "dtype", "numel", "device",
                 "pending_writes", "external", "user_array", "source", "record",
                 "__weakref__")

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
        trace = current().trace
        if trace is not None:
            trace.made(self)
        self.user_array = None  # the array `from_numpy` shares: its flags say if ember may write
        self.source = None  # the node the buffer's value was computed from (see `commit`)
        self.record = None  # weak ref to the autograd record that computed the value last

    @classmethod
    def from_array(cls, flat: np.ndarray, dtype: dt.DType, device: str = "cpu",
                   shape: tuple[int, ...] | None = None) -> Storage:
        """A realised storage over `flat`, read as `shape` (default: flat); `flat` is
        copied into `device`'s memory where it is not there."""
        buf = rb.Buffer(devices.to_memory(flat, device), device)
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
        _written.add(self)
        if self.pending_writes > options.max_pending_writes and current().trace is None:
            realize_storages([self])

    def set_array(self, flat: np.ndarray) -> None:
        """Replace the value by a realised flat array (an in-place write)."""
        if self.external:
            _store(self, flat, self.node.shape)  # into the memory NumPy shares
        else:
            buf = rb.Buffer(devices.to_memory(flat, self.device), self.device)
            self._adopt(buf, self.node.shape)
        self.version += 1

    def share(self, new: bool = False, user_array: np.ndarray | None = None) -> None:
        """Mark this storage's memory as shared with a NumPy array the user holds.

        Its in-place updates are written into that memory from now on, and no value
        computed from it is kept for reuse (NumPy may change it behind ember's back).
        `new`: no node has read the storage yet. `user_array`: the array `from_numpy`
        was given; ember writes only while its `flags.writeable` is set.
        """
        if not self.is_realized:
            realize_storages([self])
        if user_array is None and (trace := current().trace) is not None:
            trace.value_shared(self)  # a graph break: a replay cannot share memory with NumPy
        if user_array is not None:
            self.user_array = user_array
        if not self.external:
            self.external = True
            rb.share(self.buffer, new)

    def check_writable(self) -> None:
        """Raise before an in-place write into memory shared with a read-only NumPy array."""
        user = self.user_array
        if user is None or not self.external:
            return
        flat = self.buffer.array
        if user.flags.writeable:
            if flat.flags.writeable:
                return
            try:
                # NOTE: the array was made writable after from_numpy; ember's flat view of
                # it was made read-only then, and may follow it now
                flat.flags.writeable = True
                return
            except ValueError:
                pass
        raise RuntimeError(
            "cannot write in place into a tensor that shares memory with a read-only "
            "NumPy array (em.from_numpy of an array whose flags.writeable is False); "
            "make the array writable (a.flags.writeable = True) before em.from_numpy(a), "
            "or write into a copy (em.tensor(a) or t.clone())")

    def assign(self, flat: np.ndarray) -> None:
        """Set the whole value to `flat` (an in-place write, realised at once)."""
        self.node = None
        _store(self, np.asarray(flat, dtype=self.dtype.np).reshape(-1))
        self.version += 1

    def _adopt(self, buf: rb.Buffer, shape: tuple[int, ...] | None = None) -> None:
        self.buffer = buf
        self.own = self.node = rb.buffer_node(buf, self.dtype, shape)
        self.pending_writes = 0
        self.source = None

    def array(self) -> np.ndarray:
        """The realised flat array (realising first if needed); a copy in host memory of
        a device's buffer."""
        return rb.host(self.raw())

    def raw(self):
        """The realised flat value in its device's memory (realising first if needed):
        the NumPy array on the CPU, the device tensor on a GPU."""
        if not self.is_realized:
            realize_storages([self])
        if (trace := current().trace) is not None:
            trace.value_read(self)  # a graph break when self is an input of the trace
        return self.buffer.array


def _store(s: Storage, value, shape: tuple[int, ...] | None = None) -> None:
    """Make `value` (flat) the storage's realised value, read as `shape` (default: flat)."""
    value = devices.to_memory(value, s.device)
    old = s.buffer
    if s.external and old is not None and old.array.shape == value.shape:
        # Write into the memory the user shares. Nodes that still read the old
        # value (pending graphs, autograd records) keep a private copy of it.
        # NOTE: always: a node may read the old buffer under another shape than the
        # storage's own node (a full `copy_` from it leaves such a node pending), so
        # whether the own node is alive says nothing
        s._adopt(rb.Buffer(old.array, s.device), shape)
        rb.share_more(s.buffer)
        old.array = old.array.copy()
        rb.unshare(old)
        np.copyto(s.buffer.array, value)
    else:
        s._adopt(rb.Buffer(rb.owned(value), s.device), shape)


# Storages holding in-place writes not yet computed (a parameter after `w -= lr * g`).
_written: weakref.WeakSet = weakref.WeakSet()


def _written_read(roots, todo_ids: set) -> list[Storage]:
    """The storages of `_written` whose pending value the graph of `roots` computes.

    NOTE: a realisation that computes such a value commits it to its storage in the
    same run (one more output): otherwise the next step's graph would compute it again
    with the step's own work on top, and a loop that updates parameters in place and
    reads only a loss would build a longer graph every step, missing the cache.
    """
    wanted = {id(s.node): s for s in list(_written)
              if not s.is_realized and id(s) not in todo_ids}
    if not wanted:
        return []
    found = []
    seen: set[int] = set()
    stack = list(roots)
    known = rb.realized.data
    ref = weakref.ref
    while stack:
        n = stack.pop()
        i = id(n)
        if i in seen:
            continue
        seen.add(i)
        s = wanted.pop(i, None)
        if s is not None:
            found.append(s)
            if not wanted:
                break
        # NOTE: the run reads a value already computed and computes nothing below it (as
        # runtime.cache.walk stops there): without this stop the walk went down every
        # earlier step's graph, one step longer each step of a training loop
        if not (known and ref(n) in known):
            stack.extend(n.inputs)
    walked[0] = len(seen)
    return found


walked = [0]  # how many nodes the last `_written_read` visited (tests read it)


def realize_storages(storages, extra: tuple = (), device: str | None = None) -> list:
    """Realise `storages` in one graph; also compute the `extra` nodes and return them.

    `extra` nodes are computed in the same run (shared work is done once) but not
    stored anywhere: callers use them for values such as gradients, in the memory of
    the storages' device (or `device`, where no storage is given). Pending in-place
    writes of other storages that the graph computes anyway are committed too.
    Storages on several devices are realised in one run per device: each program runs
    where its results live.
    """
    todo = []
    seen = set()
    not_shared: set = set()  # nodes found not to read shared memory (see rb.reads_shared)
    for s in storages:
        if not s.is_realized and id(s) not in seen:
            seen.add(id(s))
            todo.append(s)
    if not todo and not extra:
        return []
    if todo:
        device = todo[0].device
        if len(todo) > 1 and any(s.device != device for s in todo):
            realize_storages([s for s in todo if s.device != device])
            todo = [s for s in todo if s.device == device]
            seen = {id(s) for s in todo}
    chains = [s.node for s in todo]
    trace = current().trace
    if trace is not None:
        trace.realizing(chains + list(extra))
    else:
        more = _written_read(chains + list(extra), seen) if _written else []
        if rb.shares_memory() and any(rb.reads_shared(n, not_shared) for n in chains):
            more += _saved_pending(todo, seen, not_shared)
        todo += more
        chains += [s.node for s in more]
    values = run(chains + list(extra), device or "cpu")
    commit(todo, chains, values, not_shared)
    del chains
    return values[len(todo):]


def _saved_pending(storages, ids: set, not_shared: set) -> list[Storage]:
    """The pending storages that the autograd records behind `storages` saved, unwritten
    since, whose values read memory NumPy shares (`ids`: storages already realised in
    this run, to which those found are added; `not_shared` as in `rb.reads_shared`).

    NOTE: a value computed from memory NumPy shares is not kept for reuse, so a backward
    pass would compute a saved one again from what NumPy wrote since (a loss printed,
    then its input array refilled). torch saved what the forward pass computed: a
    realisation that reads shared memory commits the saved values behind it, and the
    engine reads them from their storages (`Storage.source`, engine.`_forward_values`).
    """
    stack = [r() for s in storages if (r := s.record) is not None]
    walked: set[int] = set()
    found = []
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in walked:
            continue
        walked.add(id(fn))
        for st, v, *_ in (fn.out_saved, *fn.saved):
            # NOTE: a record released by a backward pass holds no storages (None)
            if st is not None and st.version == v and not st.is_realized and \
                    id(st) not in ids and rb.reads_shared(st.node, not_shared):
                ids.add(id(st))
                found.append(st)
        stack += [e for e in fn.edges if hasattr(e, "saved")]  # records, not leaves
    return found


def commit(storages, chains, values, not_shared: set | None = None) -> None:
    """Make each value the realised value of its storage, whose pending node was its chain.

    A chain's value is kept for reuse (`runtime.realized`) unless it read memory NumPy
    shares: a later realisation must read that memory again. The storage remembers the
    chain as its `source`, for the backward passes of the records that read it (also
    once `numpy()` shares the storage, and its kept value is forgotten).
    """
    seen: set = set() if not_shared is None else not_shared
    # NOTE: storages NumPy shares are written last: their write goes into memory that
    # another value of the same run may be (a passthrough of the old buffer), which
    # must be stored (copied) before it changes
    order = sorted(zip(storages, chains, values), key=lambda item: item[0].external)
    for s, chain, value in order:
        if not rb.reads_shared(chain, seen):
            rb.realized[chain] = value if not s.external else value.copy()
        _store(s, value.reshape(-1), chain.shape)
        if chain.inputs:
            s.source = chain
