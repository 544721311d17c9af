"""The compiled-graph cache: canonical keys, an LRU in memory, and a disk store.

**Key.** `canonical(outputs)` rebuilds the pending graph in one traversal with
its data replaced by positions: every BUFFER node, and every node whose value
is already known (`runtime.realized`), becomes an input placeholder
`BUFFER -1-i` (i: the input's position), and every RAND node's seed and
sequence number become runtime parameter j (`arg = ("param", j, stream)`), so
a loop that draws fresh random numbers each step still hits. What remains is
structure: ops, dtypes, shapes, views and constant values. Nodes are
hash-consed, so the canonical output nodes themselves are the key: equal
structure gives the very same objects, and a lookup hashes a tuple of them.

**Memory.** `MemoryCache` is bounded by entries and bytes (of generated
source) with least-recently-used eviction; `stats()` returns its counters
(hits, misses, compiles, evictions, disk hits/writes/rejects) and `clear()`
empties it (and the counters).

**Disk.** `DiskCache` keeps the generated source under
`options.cache_dir/<ember version>-<numpy version>-<compiler digest>/`, one
file per graph, named by the SHA-256 of the canonical graph's text. A file is
a header line with the SHA-256 of what follows: a metadata line (JSON: kernel
count, peak memory, the compiler's report) and the source; a file whose
checksum does not match (truncated, edited) is rejected, recompiled and
rewritten, never executed. Writes go to a temporary file in the same folder
and are renamed into place (`os.replace`), so two processes compiling the
same graph both write whole files and readers never see half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, fields

import numpy as np

from ..ir.graph import Graph
from ..ir.node import Node, node
from ..ir.ops import Op
from .buffers import lookup, realized
from .config import options

__all__ = [
    "CODEGEN_VERSION",
    "CacheStats",
    "DiskCache",
    "MemoryCache",
    "canonical",
    "canonical_over",
    "clear",
    "disk",
    "memory",
    "stats",
    "structure",
    "walk",
]

CODEGEN_VERSION = "1"


# ---------------------------------------------------------------------------
# canonical form

def canonical(outputs) -> tuple[tuple[Node, ...], list[np.ndarray], list[tuple[int, int]]]:
    """(canonical output nodes, input arrays by position, RAND parameters by position)."""
    visit, inputs, params = _walker()
    try:
        outs = tuple([visit(o) for o in outputs])
        _unlink(visit)
        return outs, inputs, params
    except RecursionError:
        # a graph deeper than the recursion limit: visit in topological order
        # first, so every recursive call finds its inputs already memoised
        from ..ir.graph import toposort
        visit, inputs, params = _walker()
        known = realized.data
        for n in toposort(outputs, stop=lambda n: bool(known) and weakref.ref(n) in known):
            visit(n)
        outs = tuple([visit(o) for o in outputs])
        _unlink(visit)
    return outs, inputs, params


def _unlink(fn) -> None:
    """Break the cycle a recursive closure makes (fn -> its cell -> fn)."""
    for cell in fn.__closure__ or ():
        if cell.cell_contents is fn:
            cell.cell_contents = None


def _walker(memo: dict | None = None):
    memo = {} if memo is None else memo
    inputs: list[np.ndarray] = []
    params: list[tuple[int, int]] = []
    known = realized.data
    ref = weakref.ref
    get = memo.get

    def visit(n: Node) -> Node:
        c = get(n)
        if c is not None:
            return c
        op = n.op
        ins = n.inputs
        if op is Op.BUFFER:
            c = node(op, (), -1 - len(inputs), n.dtype, n.shape)
            inputs.append(lookup(n.arg).array)
        elif not ins:
            if op is Op.RAND:
                seed, seq, stream = n.arg
                c = node(op, (), ("param", len(params), stream), n.dtype, n.shape)
                params.append((seed, seq))
            else:
                c = n
        elif known and ref(n) in known:
            c = node(Op.BUFFER, (), -1 - len(inputs), n.dtype, n.shape)
            inputs.append(known[ref(n)])
        else:
            new = tuple([visit(i) for i in ins])
            c = n if new == ins else node(op, new, n.arg, n.dtype, n.shape)
        memo[n] = c
        return c

    return visit, inputs, params


def structure(outputs) -> tuple[tuple, list[np.ndarray], list[tuple[int, int]]]:
    """(structural key, input arrays, RAND parameters): what a lookup needs, fast.

    The key is a flat tuple with one entry per node in the order `canonical`
    visits them: (op, arg, dtype, shape, input positions...), inputs and
    realised nodes as (-1, dtype, shape) (the program reads their values),
    RAND as (op, stream, dtype, shape), CONST args by repr (so -0.0 and NaN key
    correctly). It names the same graph
    as `canonical`'s nodes, without building them (a node costs ~0.5 us here).
    NOTE: ops enter the key as `id(op)`: `Enum.__hash__` runs Python code, and
    this key never leaves the process (the disk key hashes the graph's text).
    """
    walked = walk(outputs)
    if walked is None:
        return canonical(outputs)
    return walked[:3]


def walk(outputs, through_known: bool = False):
    """`structure`'s (key, inputs, params), then where each node is in the key
    (node -> position), the nodes the inputs come from and the RAND nodes, in
    order; None for a graph deeper than the recursion limit.

    `through_known`: a node whose value is known is still an input, but the walk
    goes on below it too (a backward pass reads the values that computed it), and
    its token is its whole structure marked as known, `(-2, token)`: a backward
    pass depends on the op that computed a value, not only on its shape."""
    index: dict[Node, int] = {}
    tokens: list[tuple] = []
    inputs: list[np.ndarray] = []
    params: list[tuple[int, int]] = []
    sources: list[Node] = []
    rands: list[Node] = []
    known = realized.data
    ref = weakref.ref
    get = index.get
    BUFFER, RAND, CONST = Op.BUFFER, Op.RAND, Op.CONST

    def visit(n: Node) -> int:
        i = get(n)
        if i is not None:
            return i
        op = n.op
        ins = n.inputs
        if op is BUFFER:
            tokens.append((-1, n.dtype, n.shape))
            inputs.append(lookup(n.arg).array)
            sources.append(n)
        elif not ins:
            if op is RAND:
                seed, seq, stream = n.arg
                tokens.append((id(op), stream, n.dtype, n.shape))
                params.append((seed, seq))
                rands.append(n)
            else:
                tokens.append((id(op), repr(n.arg) if op is CONST else n.arg, n.dtype,
                               n.shape))
        elif known and not through_known and ref(n) in known:
            tokens.append((-1, n.dtype, n.shape))
            inputs.append(known[ref(n)])
            sources.append(n)
        else:
            # NOTE: every computed node's token is built here and nowhere else, so
            # it always carries the node's op, arg, dtype, shape and inputs: two
            # graphs get one key only where their whole structure is equal.
            if len(ins) == 1:
                token = (id(op), n.arg, n.dtype, n.shape, visit(ins[0]))
            elif len(ins) == 2:
                a = visit(ins[0])
                token = (id(op), n.arg, n.dtype, n.shape, a, visit(ins[1]))
            else:
                token = (id(op), n.arg, n.dtype, n.shape, *map(visit, ins))
            if through_known and known and ref(n) in known:
                # computed already: an input of the program, under its own structure
                token = (-2, token)
                inputs.append(known[ref(n)])
                sources.append(n)
            tokens.append(token)
        i = index[n] = len(tokens) - 1
        return i

    try:
        outs = tuple([visit(o) for o in outputs])
    except RecursionError:
        return None
    finally:
        # NOTE: `visit` refers to itself through its closure cell; unbinding it breaks
        # that cycle, so the graph is freed at once, not by the cycle collector.
        visit = None  # noqa: F841
    tokens.append(outs)
    return tuple(tokens), inputs, params, index, sources, rands


def canonical_over(outputs, sources, rands) -> tuple[Node, ...] | None:
    """`canonical(outputs)` with the inputs and parameters numbered as `walk` numbered
    `sources` and `rands` (of another graph over the same data); None where the
    outputs read an input or a RAND node not among them."""
    memo = {n: node(Op.BUFFER, (), -1 - k, n.dtype, n.shape) for k, n in enumerate(sources)}
    for j, n in enumerate(rands):
        memo[n] = node(Op.RAND, (), ("param", j, n.arg[2]), n.dtype, n.shape)
    visit, inputs, params = _walker(memo)
    try:
        outs = tuple([visit(o) for o in outputs])
    except RecursionError:
        return None
    finally:
        _unlink(visit)
    return None if inputs or params else outs


def key_text(key: tuple[Node, ...]) -> str:
    """The canonical graph's text form (what the disk key hashes)."""
    return str(Graph(key))


# ---------------------------------------------------------------------------
# counters

@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    compiles: int = 0
    evictions: int = 0
    disk_hits: int = 0
    disk_writes: int = 0
    disk_rejects: int = 0
    entries: int = 0
    bytes: int = 0

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, 0)


class MemoryCache:
    """An LRU map key -> compiled entry, bounded by entries and bytes."""

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: OrderedDict = OrderedDict()
        self.stats = CacheStats()
        # NOTE: realisations may run on several threads; compiling happens outside
        # the lock (two threads may compile the same graph; the last put wins)
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                self.stats.misses += 1
                return None
            self.entries.move_to_end(key)
            self.stats.hits += 1
            return entry

    def put(self, key, entry) -> None:
        with self.lock:
            self._put(key, entry)

    def _put(self, key, entry) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self.stats.bytes -= old.nbytes
        self.entries[key] = entry
        self.stats.bytes += entry.nbytes
        while self.entries and (len(self.entries) > self.max_entries
                                or self.stats.bytes > self.max_bytes) and len(self.entries) > 1:
            _, gone = self.entries.popitem(last=False)
            self.stats.bytes -= gone.nbytes
            self.stats.evictions += 1
        self.stats.entries = len(self.entries)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.stats.reset()

    def __len__(self) -> int:
        return len(self.entries)


# ---------------------------------------------------------------------------
# disk

# the compiler's source files, relative to this folder (the same in a checkout and
# installed: ember.runtime, ember.codegen and ember.ir are sibling folders)
_COMPILER_FILES = ("../codegen/kernel.py", "../codegen/numpy_gen.py", "../ir/passes/fusion.py",
                   "../ir/passes/schedule.py", "../ir/passes/simplify.py", "compiled.py",
                   "interpreter.py", "threads.py")


def _versions() -> str:
    """ember's and NumPy's versions, and a digest of the compiler's own source.

    NOTE: the digest covers the passes, the code generator and this runtime, so
    an edited compiler (in a checkout, between releases) never loads programs
    an older one generated. The files are read, not imported, so that a disk
    hit in a new process does not pay for importing the compiler.
    """
    ember = getattr(sys.modules.get("ember"), "__version__", "dev")
    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for rel in _COMPILER_FILES:
        try:
            with open(os.path.join(here, rel), "rb") as f:
                h.update(f.read())
        except OSError:  # pragma: no cover - a zipped install: versions must do
            h.update(rel.encode())
    return f"ember{ember}-numpy{np.__version__}-cg{CODEGEN_VERSION}-{h.hexdigest()[:12]}"


_VERSIONS = [None]


class DiskCache:
    """Generated source on disk, checksummed, written atomically, bounded.

    A load touches the file; every `PRUNE_EVERY` writes the folder is cut back to
    `options.disk_cache_entries` files, least recently used first (by mtime).
    """

    HEADER = "# ember-cache sha256="
    PRUNE_EVERY = 64

    def __init__(self, stats: CacheStats):
        self.stats = stats
        self.writes = 0

    @property
    def folder(self) -> str:
        if _VERSIONS[0] is None:
            _VERSIONS[0] = _versions()
        return os.path.join(options.cache_dir, _VERSIONS[0])

    def path(self, digest: str) -> str:
        return os.path.join(self.folder, digest + ".py")

    def load(self, digest: str) -> tuple[str, dict] | None:
        """(source, metadata) as stored, or None (absent, or rejected as corrupt)."""
        try:
            with open(self.path(digest), encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            return None
        head, _, body = text.partition("\n")
        meta_line, _, source = body.partition("\n")
        try:
            if not head.startswith(self.HEADER) or head[len(self.HEADER):] != \
                    hashlib.sha256(body.encode()).hexdigest():
                raise ValueError("checksum")
            meta = json.loads(meta_line[2:])
        except ValueError:
            self.stats.disk_rejects += 1
            return None
        self.stats.disk_hits += 1
        try:
            os.utime(self.path(digest))  # recently used: pruned last
        except OSError:
            pass
        return source, meta

    def store(self, digest: str, source: str, meta: dict | None = None) -> None:
        """Write `source` and its `metadata` (JSON) atomically, with a checksum of both."""
        body = "# " + json.dumps(meta or {}) + "\n" + source
        folder = self.folder
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".py", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(self.HEADER + hashlib.sha256(body.encode()).hexdigest() + "\n")
                    f.write(body)
                os.replace(tmp, self.path(digest))
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError:
            return  # a read-only or full disk only costs a recompile next time
        self.stats.disk_writes += 1
        self.writes += 1
        if self.writes % self.PRUNE_EVERY == 0:
            self.prune()

    def prune(self, keep: int | None = None) -> int:
        """Remove the least recently used files beyond `keep` (default
        `options.disk_cache_entries`); returns how many went."""
        keep = options.disk_cache_entries if keep is None else keep
        try:
            files = [(e.stat().st_mtime, e.path) for e in os.scandir(self.folder)
                     if e.name.endswith(".py") and not e.name.startswith(".tmp-")]
        except OSError:
            return 0
        files.sort()
        gone = 0
        for _, path in files[:max(0, len(files) - keep)]:
            try:
                os.unlink(path)
                gone += 1
            except OSError:  # another process removed it first
                pass
        return gone


def digest_of(key: tuple[Node, ...]) -> str:
    if _VERSIONS[0] is None:
        _VERSIONS[0] = _versions()
    # NOTE: the tile size shapes the generated source, so it is part of the key
    head = f"{_VERSIONS[0]}-tile{options.tile_elems}\n"
    return hashlib.sha256(head.encode() + key_text(key).encode()).hexdigest()


memory = MemoryCache(options.cache_entries, options.cache_bytes)
disk = DiskCache(memory.stats)


def stats() -> CacheStats:
    """The cache's counters: `ember.runtime.cache.stats().hits`, `.misses`, ..."""
    return memory.stats


def clear() -> None:
    """Forget every compiled graph held in memory and reset the counters."""
    memory.clear()
