"""The compiled-graph cache: canonical keys, an LRU in memory, and a disk store.

**Key.** One traversal, `walk(outputs)`, gives a pending graph's key: the graph
with its data replaced by positions: every BUFFER node, and every node whose value
is already known (`runtime.realized`), becomes an input placeholder
`BUFFER -1-i` (i: the input's position), and every RAND node's seed and
sequence number become runtime parameter j (`arg = ("param", j, stream)`), so
a loop that draws fresh random numbers each step still hits. A floating-point
constant (a Python number that reached the graph: a learning rate, a bias
correction) becomes runtime parameter j too (`arg = Param(j)`; the value is
bound at each call), so a loop whose scalars change every step still hits:
the key holds its dtype and shape, not its value. A constant stays keyed by
value where the value changes what is computed (`keyed_scalar`): an exponent
of a power (2 and 0.5 select other code), a value an exact identity folds
away (0, 1, -0.0), -1, 2, 0.5, NaN and infinities, and every integer or bool
constant (shapes, indices, masks, integer arithmetic). What remains is
structure: ops, dtypes, shapes, views and keyed constant values. `structure`
is that walk's flat tuple of tokens (what a lookup hashes); `canonical`
rebuilds the same graph as nodes over the placeholders (what the compiler and
the disk key read). Nodes are hash-consed, so equal structure gives the very
same canonical nodes.

**Memory.** `MemoryCache` is bounded by entries and bytes (of generated
source) with least-recently-used eviction; `stats()` returns its counters
(hits, misses, compiles, evictions, disk hits/writes/rejects) and `clear()`
empties it (and the counters). Each namespace has its own `clear()` and
`stats()`: `memory`, `disk` (its files), backward plans (tracer/plans.py, held
in `memory` under keys that start with "plan") and each `em.compile`d function
(its traces).

**Disk.** `DiskCache` keeps the generated source under
`options.cache_dir/<ember version>-<numpy version>-<compiler digest>/`, one
file per graph, named by the SHA-256 of the canonical graph's text. The
compiler digest hashes every module of the compiler's packages (ir/, its
passes, codegen/, runtime/), so any edit to them starts a new folder. The
cache `exec`s what it loads: it is used only while its folders and files are
the current user's and writable by no one else (it makes them 0700 and 0600),
never through a symbolic link; otherwise it warns once and is not used. A
program loaded from it is checked on its first call: outputs of other shapes
or dtypes than its graph's discard it (runtime/compiled.py). A file is
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
import stat
import sys
import tempfile
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, fields

import numpy as np

from ..ir.graph import Graph
from ..ir.node import Node, Param, node
from ..ir.ops import Op
from .buffers import lookup, realized
from .config import default_cache_dir, options

__all__ = [
    "CODEGEN_VERSION",
    "CacheStats",
    "DiskCache",
    "MemoryCache",
    "canonical",
    "canonical_over",
    "clear",
    "compiler_digest",
    "disk",
    "keyed_scalar",
    "memory",
    "stats",
    "structure",
    "walk",
]

CODEGEN_VERSION = "1"


# ---------------------------------------------------------------------------
# canonical form

# constant values that select other code or fold away (simplify's identities)
_SPECIAL = frozenset({0.0, 1.0, -1.0, 2.0, 0.5})


def keyed_scalar(n: Node) -> bool:
    """Whether CONST node `n` is keyed by its value (else it is a runtime parameter).

    NOTE: a value is a parameter only where no pass or generator looks at it: a
    float constant of a float dtype that is not one of the values simplify's
    identities and the generators test for (0, -0.0, 1, -1, 2, 0.5), nor NaN or an
    infinity. An exponent of POW is keyed whatever its value (the walks see to that).
    """
    v = n.arg
    # NOTE: v - v is 0.0 for every finite float (NaN and infinities give NaN)
    return type(v) is not float or v in _SPECIAL or v - v != 0.0 or n.dtype.category != 2


def canonical(outputs) -> tuple[tuple[Node, ...], list[np.ndarray], list]:
    """(canonical output nodes, input arrays by position, runtime parameters by position:
    a RAND node's (seed, sequence), a scalar constant's value): the graph `walk`
    visits, rebuilt over its placeholders."""
    walked = walk(outputs)
    if walked is None:
        # a graph deeper than the recursion limit: visit in topological order first
        walked = walk(outputs, deep=True)
    _, inputs, params, index, sources, rands = walked
    return _rebuild(outputs, index, sources, rands), inputs, params


def _rebuild(outputs, index, sources, rands) -> tuple[Node, ...]:
    """The canonical nodes of `outputs`: the graph `walk` visited (`index`, in visit
    order, inputs before their users), with `sources` as input placeholders
    (`BUFFER -1-k`) and `rands` (RAND nodes and scalar constants) as runtime
    parameters, numbered in their order."""
    made = {n: node(Op.BUFFER, (), -1 - k, n.dtype, n.shape) for k, n in enumerate(sources)}
    for j, n in enumerate(rands):
        made[n] = node(Op.RAND, (), ("param", j, n.arg[2]), n.dtype, n.shape) \
            if n.op is Op.RAND else node(Op.CONST, (), Param(j), n.dtype, n.shape)
    POW, CONST = Op.POW, Op.CONST
    for n in index:
        if n in made:
            continue
        ins = n.inputs
        if n.op is POW and ins[1].op is CONST:
            # NOTE: an exponent stays keyed by value (NumPy computes 2 and 0.5 otherwise)
            new = (made[ins[0]], ins[1])
        else:
            new = tuple([made.get(i, i) if i.op is CONST else made[i] for i in ins])
        made[n] = n if new == ins else node(n.op, new, n.arg, n.dtype, n.shape)
    return tuple([made[o] for o in outputs])


def structure(outputs) -> tuple[tuple, list[np.ndarray], list[tuple[int, int]]]:
    """(structural key, input arrays, RAND parameters): what a lookup needs, fast.

    The key is `walk`'s: a flat tuple with one entry per node, in visit order:
    (op, arg, dtype, shape, input positions...), inputs and realised nodes as
    (-1, dtype, shape) (the program reads their values), RAND as (op, stream,
    dtype, shape), a scalar parameter as (op, Param, dtype, shape), other CONST args
    by repr (so -0.0 and NaN key correctly). It names the graph `canonical`
    rebuilds from the same walk, without building its nodes (a node costs ~0.5 us
    here).
    NOTE: ops enter the key as `id(op)`: `Enum.__hash__` runs Python code, and
    this key never leaves the process (the disk key hashes the graph's text).
    """
    walked = walk(outputs)
    if walked is None:
        return canonical(outputs)
    return walked[:3]


def walk(outputs, through_known: bool = False, deep: bool = False,
         scalars: bool | None = None):
    """The one traversal behind every key: `structure`'s (key, inputs, params),
    then where each node is in the key (node -> position, in visit order), the
    nodes the inputs come from and the RAND nodes, in order; None for a graph
    deeper than the recursion limit, unless `deep` (then the nodes are visited in
    topological order first, so that every recursive call finds its inputs done).

    `through_known`: a node whose value is known is still an input, but the walk
    goes on below it too (a backward pass reads the values that computed it), and
    its token is its whole structure marked as known, `(-2, token)`: a backward
    pass depends on the op that computed a value, not only on its shape. By default
    such a walk keeps every constant keyed by value (a VJP rule may read a constant's
    value); backward plans take scalars as parameters all the same, and check that
    the graph they learn reads them only as such (tracer/plans.py).

    `scalars` (default: not `through_known`): whether scalar constants
    (`keyed_scalar` false) are runtime parameters: their token is
    `(op, Param, dtype, shape)`, their value goes to `params` and their node to the
    last list, in order with the RAND parameters (as `canonical` numbers them)."""
    index: dict[Node, int] = {}
    tokens: list[tuple] = []
    inputs: list[np.ndarray] = []
    params: list[tuple[int, int]] = []
    sources: list[Node] = []
    rands: list[Node] = []
    known = realized.data
    ref = weakref.ref
    get = index.get
    BUFFER, RAND, CONST, POW = Op.BUFFER, Op.RAND, Op.CONST, Op.POW
    if scalars is None:
        scalars = not through_known
    kept: dict[Node, int] = {}  # exponents: keyed by value even where a parameter elsewhere

    def exponent(n: Node) -> int:
        i = kept.get(n)
        if i is None:
            tokens.append((id(CONST), repr(n.arg), n.dtype, n.shape))
            i = kept[n] = len(tokens) - 1
        return i

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
            elif op is CONST and scalars and not keyed_scalar(n):
                tokens.append((id(op), Param, n.dtype, n.shape))
                params.append(n.arg)
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
                e = ins[1]
                e = exponent(e) if op is POW and e.op is CONST else visit(e)
                token = (id(op), n.arg, n.dtype, n.shape, a, e)
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
        if deep:
            from ..ir.graph import toposort
            stop = through_known or not known
            for n in toposort(outputs, stop=None if stop else lambda n: ref(n) in known):
                visit(n)
        outs = tuple([visit(o) for o in outputs])
    except RecursionError:
        return None
    finally:
        # NOTE: `visit` refers to itself through its closure cell; unbinding it breaks
        # that cycle, so the graph is freed at once, not by the cycle collector.
        visit = None  # noqa: F841
    tokens.append(outs)
    return tuple(tokens), inputs, params, index, sources, rands


def canonical_over(outputs, sources, rands) -> tuple[tuple[Node, ...], bool] | None:
    """`canonical(outputs)` with the inputs and parameters numbered as `walk` numbered
    `sources` and `rands` (of another graph over the same data), and whether the
    outputs hold scalar constants that are not among `rands` (a backward rule's own,
    or one derived from a parameter's value: these stay keyed by value, so the
    program serves only the values it was built with); None where the outputs read
    an input or a RAND node not among them."""
    walked = walk(outputs)
    if walked is None:
        return None
    _, _, _, index, found, found_rands = walked
    given, params = set(sources), set(rands)
    if any(n not in given for n in found):
        return None
    own = False
    for r in found_rands:
        if r not in params:
            if r.op is Op.RAND:
                return None
            own = True
    return _rebuild(outputs, index, sources, rands), own


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
    """An LRU map key -> compiled entry, bounded by entries and bytes.

    Its `counters` (hits, misses, compiles, evictions, entries, bytes) are shared
    with the disk cache (disk_*): `stats()` returns them, `clear()` empties it and
    resets them, `discard(where)` drops the entries whose key `where` accepts.
    """

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: OrderedDict = OrderedDict()
        self.counters = CacheStats()
        # NOTE: realisations may run on several threads; compiling happens outside
        # the lock (two threads may compile the same graph; the last put wins)
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                self.counters.misses += 1
                return None
            self.entries.move_to_end(key)
            self.counters.hits += 1
            return entry

    def put(self, key, entry) -> None:
        with self.lock:
            self._put(key, entry)

    def _put(self, key, entry) -> None:
        counters = self.counters
        old = self.entries.pop(key, None)
        if old is not None:
            counters.bytes -= old.nbytes
        self.entries[key] = entry
        counters.bytes += entry.nbytes
        while self.entries and (len(self.entries) > self.max_entries
                                or counters.bytes > self.max_bytes) and len(self.entries) > 1:
            _, gone = self.entries.popitem(last=False)
            counters.bytes -= gone.nbytes
            counters.evictions += 1
        counters.entries = len(self.entries)

    def discard(self, where) -> int:
        """Drop every entry whose key `where(key)` accepts; returns how many went."""
        with self.lock:
            keys = [k for k in self.entries if where(k)]
            for k in keys:
                self.counters.bytes -= self.entries.pop(k).nbytes
            self.counters.entries = len(self.entries)
        return len(keys)

    def stats(self) -> CacheStats:
        """The counters (live: they change as the cache is used)."""
        return self.counters

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.counters.reset()

    def __len__(self) -> int:
        return len(self.entries)


# ---------------------------------------------------------------------------
# disk

# the packages the compiler consists of, relative to ember's package folder (the
# same in a checkout and installed: ember.ir, ember.codegen and ember.runtime are
# sibling folders). NOTE: tracer/ is left out: it decides which graph is built,
# and the graph is the key; how a graph is compiled is decided here.
_COMPILER_PACKAGES = ("ir", "codegen", "runtime")
_EMBER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compiler_digest(base: str = _EMBER_DIR, packages=_COMPILER_PACKAGES) -> str:
    """SHA-256 of every module of the compiler's packages (their paths and contents),
    walked under `base`, so that any edit to the compiler, or a module added to it,
    gives a new digest.

    NOTE: the files are read, not imported, so that a disk hit in a new process
    does not pay for importing the compiler; it costs ~1 ms, once per process.
    """
    h = hashlib.sha256()
    found = 0
    for package in packages:
        paths = []
        for folder, subfolders, names in os.walk(os.path.join(base, package)):
            subfolders[:] = sorted(d for d in subfolders
                                   if d != "__pycache__" and not d.startswith("."))
            paths += [os.path.join(folder, n) for n in names if n.endswith(".py")]
        for path in sorted(paths):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            rel = os.path.relpath(path, base).replace(os.sep, "/")
            h.update(f"{rel}\0{len(data)}\0".encode())
            h.update(data)
            found += 1
    if not found:  # pragma: no cover - a zipped install: versions must do
        h.update(repr(packages).encode())
    return h.hexdigest()


def _versions() -> str:
    """ember's and NumPy's versions, and a digest of the compiler's own source."""
    ember = getattr(sys.modules.get("ember"), "__version__", "dev")
    digest = compiler_digest()
    return f"ember{ember}-numpy{np.__version__}-cg{CODEGEN_VERSION}-{digest[:16]}"


_VERSIONS = [None]


def versions() -> str:
    """`_versions()`, computed once per process."""
    if _VERSIONS[0] is None:
        _VERSIONS[0] = _versions()
    return _VERSIONS[0]


# NOTE: O_NOFOLLOW: a symbolic link planted in the cache is refused, never followed;
# O_NONBLOCK: a FIFO planted there cannot hang the open (it is refused below)
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def _uid() -> int | None:
    """The current user's id (None where the system has none: Windows)."""
    getuid = getattr(os, "getuid", None)
    return None if getuid is None else getuid()


def _untrusted(st: os.stat_result, path: str, kind: str) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) where a folder or file of the disk cache with
    status `st` must not be used, else None: the cache runs the code it holds, so
    it must be the current user's alone."""
    is_kind = stat.S_ISDIR if kind == "folder" else stat.S_ISREG
    if not is_kind(st.st_mode):
        return (f"{path} is not a regular {kind}", f"remove {path}")
    uid = _uid()
    if uid is not None and st.st_uid != uid:
        return (f"{path} belongs to user {st.st_uid}, not to you (user {uid})",
                "remove it, or set EMBER_CACHE_DIR to a folder of your own")
    if uid is not None and st.st_mode & 0o022:
        mode = stat.S_IMODE(st.st_mode)
        recursive = "-R " if kind == "folder" else ""
        return (f"{path} is writable by group or others (mode {mode:o})",
                f"run `chmod {recursive}go-w {path}`")
    return None


def _make_folders(path: str) -> None:
    """Create `path` and its missing parents, each 0700 whatever the umask."""
    missing = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            continue  # made by another process meanwhile: checked by the caller
        os.chmod(p, 0o700)  # NOTE: mkdir's mode is cut by the umask, never widened


class DiskCache:
    """Generated source on disk, checksummed, written atomically, bounded.

    A load touches the file; every `PRUNE_EVERY` writes the folder is cut back to
    `options.disk_cache_entries` files, least recently used first (by mtime).

    The cache `exec`s what it loads, so it is used only while its folder, the
    versioned folder in it and every file read are the current user's and not
    writable by group or others; it creates them 0700 and 0600. Anything else
    (another owner, a group-writable folder, a symbolic link or a FIFO in it)
    is refused with one warning naming the path and the fix, and the process
    goes on without the disk cache in that folder.
    """

    HEADER = "# ember-cache sha256="
    PRUNE_EVERY = 64

    def __init__(self, counters: CacheStats):
        self.counters = counters  # the memory cache's: disk_hits, disk_writes, disk_rejects
        self.writes = 0
        self.trusted: str | None = None  # the versioned folder checked (this process)
        self.refused: set[str] = set()  # cache folders refused (and warned about)

    @property
    def root(self) -> str:
        return options.cache_dir or default_cache_dir()

    @property
    def folder(self) -> str:
        return os.path.join(self.root, versions())

    def path(self, digest: str) -> str:
        return os.path.join(self.folder, digest + ".py")

    def refuse(self, problem: tuple[str, str]) -> None:
        """Stop using the disk cache in this folder, with one warning."""
        root = self.root
        if root in self.refused:
            return
        self.refused.add(root)
        what, fix = problem
        warnings.warn(f"ember: not using the disk cache in {root}: {what}. To use it, {fix}. "
                      "Programs are compiled in this process instead.", RuntimeWarning,
                      stacklevel=4)

    def ready(self, create: bool) -> str | None:
        """The versioned folder, checked (and made, if `create`), or None where the
        disk cache is not to be used (refused, or absent and not `create`)."""
        root, folder = self.root, self.folder
        if root in self.refused:
            return None
        if folder == self.trusted:
            return folder
        try:
            # NOTE: the cache folder itself may be a link the user made (stat follows
            # it); the versioned folder inside may not (lstat)
            for path, look in ((root, os.stat), (folder, os.lstat)):
                try:
                    st = look(path)
                except FileNotFoundError:
                    if not create:
                        return None
                    _make_folders(path)
                    st = look(path)
                problem = _untrusted(st, path, "folder")
                if problem is not None:
                    self.refuse(problem)
                    return None
        except OSError:
            return None  # a read-only or full disk only costs a recompile
        self.trusted = folder
        return folder

    def load(self, digest: str) -> tuple[str, dict] | None:
        """(source, metadata) as stored, or None (absent, refused, or rejected as corrupt)."""
        folder = self.ready(create=False)
        if folder is None:
            return None
        path = os.path.join(folder, digest + ".py")
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            return None
        except OSError:
            if os.path.islink(path):
                self.refuse((f"{path} is a symbolic link", f"remove {path}"))
            return None
        with os.fdopen(fd, "rb") as f:
            problem = _untrusted(os.fstat(fd), path, "file")
            if problem is not None:
                self.refuse(problem)
                return None
            try:
                text = f.read().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                return None
            try:
                os.utime(fd)  # recently used: pruned last
            except (OSError, NotImplementedError):
                pass
        head, _, body = text.partition("\n")
        meta_line, _, source = body.partition("\n")
        try:
            if not head.startswith(self.HEADER) or head[len(self.HEADER):] != \
                    hashlib.sha256(body.encode()).hexdigest():
                raise ValueError("checksum")
            meta = json.loads(meta_line[2:])
        except ValueError:
            self.counters.disk_rejects += 1
            return None
        self.counters.disk_hits += 1
        return source, meta

    def store(self, digest: str, source: str, meta: dict | None = None) -> None:
        """Write `source` and its `metadata` (JSON) atomically, with a checksum of both."""
        body = "# " + json.dumps(meta or {}) + "\n" + source
        folder = self.ready(create=True)
        if folder is None:
            return
        try:
            # NOTE: mkstemp creates the file itself (O_EXCL, never through a link)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".py", dir=folder)
            try:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(self.HEADER + hashlib.sha256(body.encode()).hexdigest() + "\n")
                    f.write(body)
                os.replace(tmp, os.path.join(folder, digest + ".py"))
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError:
            return  # a read-only or full disk only costs a recompile next time
        self.counters.disk_writes += 1
        self.writes += 1
        if self.writes % self.PRUNE_EVERY == 0:
            self.prune()

    def stats(self) -> CacheStats:
        """The counters it shares with the memory cache (disk_hits, disk_writes, ...)."""
        return self.counters

    def clear(self) -> int:
        """Remove every program stored for this version of ember; returns how many went."""
        return self.prune(keep=0)

    def prune(self, keep: int | None = None) -> int:
        """Remove the least recently used files beyond `keep` (default
        `options.disk_cache_entries`); returns how many went."""
        keep = options.disk_cache_entries if keep is None else keep
        folder = self.ready(create=False)
        if folder is None:
            return 0
        try:
            files = [(e.stat(follow_symlinks=False).st_mtime, e.path) for e in os.scandir(folder)
                     if e.name.endswith(".py") and not e.name.startswith(".tmp-")
                     and e.is_file(follow_symlinks=False)]
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
    # NOTE: the tile size shapes the generated source, so it is part of the key
    head = f"{versions()}-tile{options.tile_elems}\n"
    return hashlib.sha256(head.encode() + key_text(key).encode()).hexdigest()


memory = MemoryCache(options.cache_entries, options.cache_bytes)
disk = DiskCache(memory.counters)


def stats() -> CacheStats:
    """The cache's counters: `ember.runtime.cache.stats().hits`, `.misses`, ..."""
    return memory.stats()


def clear() -> None:
    """Forget every compiled graph held in memory and reset the counters."""
    memory.clear()
