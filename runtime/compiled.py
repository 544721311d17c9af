"""The compiled path: canonical key -> cached program -> run.

`run_compiled(outputs)` canonicalises the pending graph (runtime/cache.py),
looks the program up in memory, then on disk, and only on a double miss runs
the pass pipeline (ir/passes/pipeline.py), builds the kernel description
(codegen/kernel.py) and generates NumPy source (codegen/numpy_gen.py). The
source is `exec`ed once into a namespace holding the helpers it names; the
resulting `program(inputs, params)` is what a cache hit calls. With the Triton
back end (codegen/triton_gen.py) the source is a module of `@triton.jit`
kernels, imported from a file (runtime/triton_launch.py `load_module`); it is
kept on disk like NumPy's, under a name that also says Triton's version and the
target (`triton_launch.target_tag`: a GPU's compute capability, or the
interpreter), and verified on its first call as NumPy's is.

A graph the generator cannot handle (a dtype combination NumPy has no loop
for, say) is remembered as such and runs on the reference interpreter, which
then raises the same error it always would.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
import weakref

import numpy as np

from ..ir import dtypes as dt
from ..ir.graph import Graph
from ..ir.node import Node, Param, pin
from ..ir.ops import Op
from ..ir.view import View
from . import cache, devices, special, threads
from .buffers import Buffer, reads_shared, realized
from .config import debug, options, which_run
from .interpreter import (
    IMPL,
    _conform,
    check_divisor,
    elementwise_pow,
    evaluate_on,
    float_mod,
    int_pow,
    sum_last,
)

__all__ = ["Compiled", "compile_key", "compiled_for", "fits", "fusion_backend", "lookup",
           "program_for", "run_compiled"]


class _Stub:
    """What an interpreter rule reads of a node: op, arg, dtype, shape, numel."""

    __slots__ = ("arg", "dtype", "op", "shape")

    def __init__(self, op: Op, arg, dtype: dt.DType, shape: tuple[int, ...]):
        self.op, self.arg, self.dtype, self.shape = op, arg, dtype, shape

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def _extern(n: _Stub, *args):
    return _conform(n, IMPL[n.op](n, *args))


def _strided_at(x: np.ndarray, shape, strides, offset) -> np.ndarray:
    """The AS_STRIDED view of flat x (element strides), as the interpreter reads it (the
    generated code's form of the interpreter's `_strided`, which takes a View)."""
    x = np.ascontiguousarray(x)
    item = x.itemsize
    try:
        return np.ndarray(shape, x.dtype, x, offset * item, tuple(s * item for s in strides))
    except (TypeError, ValueError):
        from .interpreter import _strided as slow
        return slow(x, View(tuple(shape), tuple(strides), offset))


def _write(dest: np.ndarray, src, shape, strides, offset, bf16: bool) -> np.ndarray:
    """WRITE as the interpreter computes it: a copy of dest with the view's elements set."""
    return _write_into(np.array(dest, copy=True), src, shape, strides, offset, bf16)


def _write_into(out: np.ndarray, src, shape, strides, offset, bf16: bool) -> np.ndarray:
    """WRITE into `out` itself, an array the program made and nothing else reads."""
    item = out.itemsize
    try:
        target = np.ndarray(shape, out.dtype, out, offset * item, tuple(s * item for s in strides))
    except (TypeError, ValueError):
        from numpy.lib.stride_tricks import as_strided
        target = as_strided(out[offset:], shape, tuple(s * item for s in strides))
    target[...] = src
    return _bf16(out) if bf16 else out


def _bf16(x):
    return np.asarray(dt.round_bf16(x)).reshape(np.shape(x))


def _bf16_(x: np.ndarray) -> None:
    x[...] = dt.round_bf16(x).reshape(x.shape)


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_SINT = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def _bits(x, u):
    """x's bits as unsigned integers of the same size (a view; a scalar's own bits)."""
    return x.view(u) if isinstance(x, (np.ndarray, np.generic)) else x


def _select(c, a, b, out: np.ndarray) -> np.ndarray:
    """out = where(c, a, b), bit for bit, with no branch per element.

    NOTE: NumPy's masked copies branch on every element; on a random mask that
    costs ~6 ns an element here, 20x an arithmetic op. Selecting the bits,
    b ^ ((a ^ b) & -c), gives the same result (NaN payloads and -0.0 included).
    """
    u = _UINT[out.dtype.itemsize]
    o = out.view(u)
    if isinstance(c, np.ndarray) and c.dtype == np.bool_ and isinstance(a, np.generic) \
            and not _bits(a, u):  # where(c, +0, b) (relu): b & (c - 1)
        # NOTE: a bool is the byte 0 or 1: its mask is made a byte an element and
        # widened inside the `and`, signed (-1 widens to all ones): 20% faster than
        # casting the condition to the wide type first
        i = _SINT[out.dtype.itemsize]
        m = np.subtract(c.view(np.int8), np.int8(1))  # True -> 0, False -> -1
        np.bitwise_and(_bits(b, i), m, out=out.view(i))
        return out
    a, b = _bits(a, u), _bits(b, u)
    if isinstance(a, np.generic) and not a:
        m = np.asarray(c).astype(u)
        np.subtract(m, u(1), out=m)  # True -> 0, False -> all ones
        np.bitwise_and(b, m, out=o)
        return out
    # NOTE: a cast then an in-place op: a ufunc casting bool itself is 3x slower
    m = np.asarray(c).astype(u)
    np.negative(m, out=m)  # True -> all ones, False -> 0
    np.bitwise_xor(a, b, out=o)
    np.bitwise_and(o, m, out=o)
    np.bitwise_xor(o, b, out=o)
    return out


def _where(c, a, b, dtype) -> np.ndarray:
    """where(c, a, b) into a fresh array of the operands' broadcast shape."""
    shape = np.broadcast_shapes(np.shape(c), np.shape(a), np.shape(b))
    return _select(c, a, b, np.empty(shape, dtype))


NAMESPACE = {"np": np, "dt": dt, "Op": Op, "View": View, "_extern": _extern,
             "_strided_at": _strided_at, "_write": _write, "_write_into": _write_into,
             "_bf16": _bf16, "_bf16_": _bf16_,
             "_tiles": threads.tiles, "_Stub": _Stub, "_int_pow": int_pow,
             "_elementwise_pow": elementwise_pow, "_select": _select, "_where": _where,
             "_sum_last": sum_last, "_check_divisor": check_divisor, "_float_mod": float_mod,
             "_erf": special.erf, "_erfc": special.erfc, "_erfinv": special.erfinv}


class Compiled:
    """One cached program: the function, its source and what the compiler reported.

    `graph`: the canonical graph it was built from, kept where the verifier is on
    (options.verify), which then checks every hit against it."""

    __slots__ = ("fn", "graph", "kernels", "nbytes", "peak_bytes", "report", "source")

    def __init__(self, fn, source: str, kernels: int = -1, peak_bytes: int = -1,
                 report: str = "", held_bytes: int = 0):
        self.fn = fn
        self.graph = None
        self.source = source
        self.kernels = kernels
        self.peak_bytes = peak_bytes
        self.report = report
        # NOTE: a program keeps its intermediate buffers (memory-plan slots)
        # between runs; they count against the cache's byte bound with the source
        self.nbytes = len(source) + 512 + held_bytes

    def __repr__(self) -> str:
        return f"<Compiled {self.kernels} kernels, {len(self.source)} chars of source>"


def _fold(n: Node):
    """The value of elementwise node n over constant inputs, by the interpreter's rules
    (None where an input is a runtime parameter: its value is bound at each call)."""
    if any(type(i.arg) is Param for i in n.inputs):
        return None
    stub = _Stub(n.op, n.arg, n.dtype, ())
    # NOTE: a constant cast to a narrow dtype (1e5 to float16) overflows to inf, as
    # the interpreter's CONST does, silently
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        args = [_conform(_Stub(Op.CONST, i.arg, i.dtype, ()), np.array(i.arg, i.dtype.np))
                for i in n.inputs]
        value = _conform(stub, IMPL[n.op](stub, *args))
    return value.item()


def _exec(source: str):
    ns = dict(NAMESPACE)
    exec(compile(source, "<ember-kernels>", "exec"), ns)  # noqa: S102 - our own generated code
    return ns["program"]


def compile_key(key: tuple[Node, ...], backend: str = "numpy", whole: bool = False,
                any_size: bool = False) -> Compiled:
    """Compile a canonical graph (no cache involved) for `backend` ("numpy" or
    "triton"). `whole`: every kernel runs whole (no tiles) and every value gets an
    array of its own (no reused slots): no choice then depends on a size
    (runtime/symbolic.py compiles programs that serve every size of a dimension so).
    `any_size`: the same for NumPy, but every kernel that has an axis to tile runs in
    tiles whose rows the program computes when it runs (`numpy_gen.emit`): the form
    that serves the large sizes."""
    # NOTE: imported here so that a process that only loads programs from the
    # disk cache never imports the compiler
    from ..codegen.backend import backend_named
    from ..codegen.kernel import build_program
    from ..ir.passes.pipeline import lower
    from ..ir.passes.schedule import describe

    _require(backend)
    start = time.perf_counter()
    graph = Graph(key)
    notes: list[str] = []
    try:
        log = (lambda line: debug(f"{which_run()}: pass {line}")) if options.debug >= 2 else None
        target = backend_named(backend, options.tile_elems)
        extra = {}
        if whole or any_size:
            # NOTE: NumPy's rules tile and refuse joins only above `tiled_above` elements
            target.tiled_above = 0 if any_size else math.inf
            target.any_size = any_size
            extra["min_slot_bytes"] = math.inf
        plan = lower(graph, fold=_fold, backend=target, check=options.verify, log=log, **extra)
        prog = build_program(plan)
        source, notes = target.emit(prog, _node_numbers(plan))
        fn = _program_of(source, backend)
    except Exception as e:
        if options.verify and not isinstance(e, (NotImplementedError, TypeError)):
            raise
        if options.debug:
            debug(f"{which_run()}: not compiled ({e}); using the interpreter")
        return Compiled(None, "", 0, 0, f"not compiled: {e}")
    report = describe(plan)
    if plan.fusion.notes:
        report += "\nnot fused:\n  " + "\n  ".join(plan.fusion.notes)
    if notes:
        report += "\non the host:\n  " + "\n  ".join(notes)
    entry = Compiled(fn, source, len(prog.kernels), plan.peak_bytes, report,
                     sum(prog.slot_bytes))
    if options.debug:
        ms = (time.perf_counter() - start) * 1e3
        debug(f"{which_run()}: compiled {len(graph)} nodes into {entry.kernels} kernels in "
              f"{ms:.2f} ms")
        if options.debug >= 2:
            debug(f"{which_run()}: graph, schedule and source\n{plan.graph}\n{report}\n{source}")
    return entry


def _require(backend: str) -> None:
    """Raise, saying what is missing, where `backend` cannot run here."""
    if backend in ("triton", "cuda"):
        from .triton_launch import available
        missing = available()
        if missing is not None:
            raise RuntimeError(missing)  # NOTE: never a silent fall back to another back end


def _node_numbers(plan) -> dict[str, tuple[int, ...]]:
    """Each kernel's nodes' numbers in the graph (the schedule's `%N`), by kernel name."""
    index = {id(n): i for i, n in enumerate(plan.graph.nodes)}
    return {g.name: tuple(index[id(n)] for n in g.nodes) for g in plan.steps}


def _digest(key: tuple[Node, ...], backend: str) -> str:
    """The disk cache's name of `key`'s program on `backend`: a Triton program's also
    names Triton's version and the target (a GPU's compute capability, or the
    interpreter), whose kernels its source was written for."""
    digest = cache.digest_of(key)
    if backend == "numpy":
        return digest
    from .triton_launch import target_tag
    return hashlib.sha256(f"{backend}-{target_tag()}\n{digest}".encode()).hexdigest()


def _program_of(source: str, backend: str):
    """The `program` function of generated source: exec'd (NumPy), or imported from a
    file (Triton: its JIT reads the kernels' source)."""
    if backend in ("triton", "cuda"):
        from .triton_launch import load_module
        fn = load_module(source).program
        if backend == "cuda":
            from .cuda_graphs import graphed
            fn = graphed(fn, source)
        return fn
    return _exec(source)


def _load_or_compile(key: tuple[Node, ...], backend: str = "numpy") -> Compiled:
    counters = cache.memory.counters
    _require(backend)
    digest = None
    if options.cache:
        digest = _digest(key, backend)
        stored = cache.disk.load(digest)
        if stored is not None:
            source, meta = stored
            try:
                entry = Compiled(_program_of(source, backend), source, meta.get("kernels", -1),
                                 meta.get("peak_bytes", -1), meta.get("report", ""),
                                 meta.get("held_bytes", 0))
            except Exception:  # noqa: BLE001 - a stored file that fails to load is rewritten
                counters.disk_rejects += 1
                counters.disk_hits -= 1
            else:
                entry.fn = _checked_first_call(entry, key, digest, backend)
                if options.debug:
                    # NOTE: a warm disk cache shows what a compile would have shown
                    debug(f"{which_run()}: loaded {entry.kernels} kernels from the disk cache, "
                          f"{cache.disk.path(digest)}")
                    if options.debug >= 2:
                        debug(f"{which_run()}: schedule and source\n{entry.report}\n{source}")
                return entry
    return _compile_and_store(key, digest, backend)


def _compile_and_store(key: tuple[Node, ...], digest: str | None,
                       backend: str = "numpy") -> Compiled:
    """Compile `key` for `backend`, and write the program to the disk cache under
    `digest` (if any)."""
    cache.memory.counters.compiles += 1
    entry = compile_key(key, backend)
    if digest is not None and entry.fn is not None:
        cache.disk.store(digest, entry.source, {"kernels": entry.kernels,
                                                "peak_bytes": entry.peak_bytes,
                                                "report": entry.report,
                                                "held_bytes": entry.nbytes - 512
                                                - len(entry.source)})
    return entry


def fits(values, key: tuple[Node, ...]) -> bool:
    """Whether a program's `values` have the shapes and dtypes of the graph's outputs."""
    if not isinstance(values, (list, tuple)) or len(values) != len(key):
        return False
    for v, n in zip(values, key):
        if isinstance(v, np.ndarray):
            if v.shape != n.shape or v.dtype != n.dtype.np:
                return False
        elif not devices.is_device_array(v) or tuple(v.shape) != n.shape \
                or v.dtype != devices.torch_dtype(n.dtype.np):
            return False
    return True


def _checked_first_call(entry: Compiled, key: tuple[Node, ...], digest: str,
                        backend: str = "numpy"):
    """The loaded program of `entry`, wrapped so that its first call checks its outputs
    against the graph's; a program that does not fit is discarded, and `key` is
    compiled again (and rewritten on disk) in its place.

    NOTE: a stored program is checksummed, but the checksum only says the file is
    whole, not that it was generated for this graph; the first call replaces the
    wrapper with the program itself, so later calls pay nothing."""
    loaded = entry.fn

    def first_call(inputs, params):
        values = loaded(inputs, params)
        if fits(values, key):
            entry.fn = loaded
            return values
        cache.memory.counters.disk_rejects += 1
        if options.debug:
            debug(f"{which_run()}: a program loaded from the disk cache gave outputs of other "
                  "shapes or dtypes than its graph's; compiling it again")
        fresh = _compile_and_store(key, digest, backend)
        # NOTE: nbytes stays: the memory cache counted the entry's bytes when it was put
        for name in ("fn", "kernels", "peak_bytes", "report", "source"):
            setattr(entry, name, getattr(fresh, name))
        if entry.fn is None:
            raise RuntimeError("a program loaded from the disk cache was wrong, and its "
                               "graph does not compile")
        return entry.fn(inputs, params)

    return first_call


def program_for(canonical_outputs: tuple[Node, ...], backend: str = "auto",
                device: str = "cpu") -> Compiled:
    """The program for canonical output nodes (`cache.canonical_over`) on `backend`
    (`resolve_backend`) for `device`: loaded from the disk cache or compiled. The caller
    keeps it (the in-memory cache is keyed by structure)."""
    return _load_or_compile(canonical_outputs, resolve_backend(backend, device))


def resolve_backend(backend: str = "auto", device: str = "cpu") -> str:
    """The back end that runs compiled programs on `device`: `backend`, or EMBER_BACKEND's
    where it is "auto"; "auto" is NumPy on the CPU and Triton on a GPU. "cuda" names the
    Triton back end over device memory (runtime/devices.py), "triton" the one over
    NumPy's memory (its kernels run by Triton's interpreter, or copied to a GPU per call).

    Raises where the back end cannot run on the device: NumPy's kernels run on the CPU."""
    if backend == "auto":
        backend = options.backend
    if device == "cpu":
        return "triton" if backend == "triton" else "numpy"
    if backend == "numpy":
        raise RuntimeError(f"the NumPy back end runs on the CPU, and these tensors are on "
                           f"{device}: use backend 'auto' or 'triton' (EMBER_BACKEND), or "
                           "move them with .cpu()")
    return "cuda"


def fusion_backend(backend: str = "auto"):
    """The `codegen.backend.Backend` object of `backend` ("auto": `resolve_backend`'s),
    as the compiler uses it (NumPy's tiles as the options say)."""
    from ..codegen.backend import backend_named
    return backend_named(resolve_backend(backend), options.tile_elems)


def lookup(outputs, backend: str = "auto", device: str = "cpu") -> tuple[Compiled, list, list]:
    """(cached program, inputs, params) for the graph behind `outputs`, run on `device`:
    the inputs are in its memory (an input buffer of another device is copied)."""
    backend = resolve_backend(backend, device)
    key, inputs, params = cache.structure(outputs)
    return _entry_for(key, outputs, backend), devices.all_in(inputs, device), params


def _entry_for(key: tuple, outputs, backend: str) -> Compiled:
    """The program of structural key `key` (of the graph behind `outputs`) on `backend`:
    from memory, or loaded or compiled and put there."""
    if backend != "numpy":
        key = (backend, key)  # NOTE: a program is keyed by its back end too
    memory = cache.memory
    entry = memory.get(key)
    if entry is None:
        memory.max_entries = options.cache_entries
        memory.max_bytes = options.cache_bytes
        # NOTE: `canonical` rebuilds the graph of the walk `structure` keys, so
        # its input and parameter positions are the ones collected above.
        nodes, _, _ = cache.canonical(outputs)
        entry = _load_or_compile(nodes, backend)
        if options.verify:
            entry.graph = nodes
        memory.put(key, entry)
    elif options.verify and entry.graph is not None:
        _check_hit(entry, outputs)
    return entry


def _check_hit(entry: Compiled, outputs) -> None:
    """Raise unless the program found for `outputs` was built from their very graph.

    NOTE: a lookup compares structural keys (`cache.structure`), which must name
    the graph as fully as the canonical nodes do; the verifier checks that they did."""
    nodes, _, _ = cache.canonical(outputs)
    if nodes != entry.graph:
        raise AssertionError(f"the compiled-graph cache served the program of\n"
                             f"{cache.key_text(entry.graph)}\nfor\n{cache.key_text(nodes)}")


def compiled_for(*tensors) -> Compiled:
    """The cached program that realising `tensors` runs (compiling it if needed).

        >>> import ember as em
        >>> x = em.tensor([1.0, 2.0])
        >>> compiled_for((x * 2 + 1).exp()).kernels
        1
    """
    outputs = [t._storage.node if hasattr(t, "_storage") else t for t in tensors]
    return lookup(outputs)[0]


def _lookup_keeping(outputs) -> tuple[Compiled, list, list, list[Node]]:
    """`lookup(outputs)` for a program that also returns the value of every product
    (MATMUL) the graph computes, and those products' nodes.

    NOTE: a product is the costly part of a graph, and another graph often reads it
    again: a training loop that reads `loss.item()` and then builds its backward
    pass and update from the forward's products (`h = x.mm(w1)`) computed them once
    more in the next step's realisation. Kept in `buffers.realized` (weakly: the
    value goes with its node), the next graph reads them as inputs. The extra
    outputs are a function of the graph's structure, so they are part of its key."""
    walked = cache.walk(outputs)
    if walked is None:
        return (*lookup(outputs), [])
    tokens, inputs, params, index, _, _ = walked
    matmul, known, ref = Op.MATMUL, realized.data, weakref.ref
    given = set(outputs)
    products = [n for n in index if n.op is matmul and n not in given
                and not (known and ref(n) in known)]
    if not products:
        # NOTE: the walk's key is `lookup`'s (`cache.structure` is this walk): not walked again
        return _entry_for(tokens, outputs, "numpy"), inputs, params, []
    extended = list(outputs) + products
    key = tokens[:-1] + (tokens[-1] + tuple([index[n] for n in products]),)
    return (_entry_for(key, extended, "numpy"), inputs, params, products)


def _keep(products: list[Node], values) -> None:
    """Keep the products' values for later graphs, except those that read memory NumPy
    shares (it may change behind ember's back).

    NOTE: each value is a buffer's memory, the buffer pinned to its node (it lives as
    long as the node): an in-place write then reads it as that buffer
    (`buffers.read_known_from_buffers`), and its graph no longer holds the product's
    inputs; without this a training loop's updates held one another, one step longer
    each step."""
    seen: set = set()
    for n, v in zip(products, values):
        if v.flags.c_contiguous and v.base is None and not reads_shared(n, seen):
            pin(n, Buffer(v.reshape(-1)))
            realized[n] = v


def run_compiled(outputs: list[Node], device: str = "cpu") -> list:
    """The values of `outputs`, computed by the cached compiled program, in the memory of
    `device` (a NumPy program also keeps the graph's products: `_lookup_keeping`)."""
    if device == "cpu" and resolve_backend() == "numpy":
        entry, inputs, params, products = _lookup_keeping(outputs)
        inputs = devices.all_in(inputs, "cpu")  # NOTE: an input on a GPU is copied in
    else:
        (entry, inputs, params), products = lookup(outputs, device=device), []
    if entry.fn is None:
        return evaluate_on(outputs, device)
    try:
        with np.errstate(all="ignore"):
            if device == "cpu":
                values = entry.fn(inputs, params)
            else:
                with devices.on(device):
                    values = entry.fn(inputs, params)
        if products:
            n = len(outputs)
            _keep(products, values[n:])
            values = values[:n]
        return values
    except Exception:
        # NOTE: the interpreter decides what an error is: it raises the error the
        # user must see; if it succeeds, the program was wrong and is retired
        # (in tests the failure surfaces instead).
        values = evaluate_on(outputs, device)
        if options.verify:
            raise
        entry.fn = None
        if options.debug:
            debug(f"{which_run()}: a compiled program failed; using the interpreter for it")
        return values
