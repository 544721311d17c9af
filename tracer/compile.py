"""`em.compile`: trace a function once per signature, then replay its graph.

The first call with a new signature runs the function on placeholder tensors
(same shapes, dtypes, requires_grad and `.grad` as the arguments) and records
what it computes: its return values, the new values of arguments it modified in
place, and the `.grad` of arguments that a `backward()` inside wrote. Later calls
whose guards match skip Python entirely: they look up the cached program, run it
on the arguments' buffers and write the results back, so an optimiser step
(forward, backward and update) can be compiled as one.

Captured tensors. A tensor the function reads without receiving it (a closure
cell, a global, an attribute, a list, a module's parameters) is found from the
trace itself: a storage that existed before the trace and that the function read
(`Tensor.node` and `Tensor.grad` tell the trace, see `_Trace`). It becomes an input
of the program held by a weak reference to its storage, never a constant: each
call reads its current value (a pending one is computed first), its in-place
updates and the `.grad` a `backward()` inside gives it are written back as an
argument's are, and the trace leaves it as it found it. A captured `.grad` is read
through its tensor at each call, so `zero_grad()` replacing it costs no retrace.

Guards: each tensor argument's shape, dtype, device, requires_grad and whether
it has a `.grad`; other arguments by value; grad mode; each captured tensor's
requires_grad and `.grad` (shape and dtype), and that its storage is alive (a
freed one retires the program). A signature keeps one program per state of its
captured tensors. A mismatch traces again, at most `recompile_limit` times per
function (then it runs uncompiled, with one warning naming the failing guard);
`em.explain(fn, *args)` says why. Python numbers, strings and shapes stay
constants of the trace, guarded by value, except float arguments that only flow
into tensor operations (`w - lr * g`): those are runtime parameters of the
program, guarded by type, so a decaying learning rate costs no trace. A float the
function reads in Python (`if lr > 0`, `lr * 2`, `round(lr)`) is guarded by value
(tracer/scalars.py says how this is found).

What needs a value of an input while tracing (`.item()`, `bool(t)`, `.numpy()`,
`.tolist()`, `print`, indexing with it; of an argument or a captured tensor, or
of anything computed from one) is a graph break: the function then runs as
ordinary lazy code for that signature, with one warning naming the line
(`fullgraph=True` raises instead). So does a result that still needs autograd
after the call (a returned tensor that requires grad when no backward ran
inside), and a tensor the function computes and keeps outside itself
(`self.cache = t`), which a replay could not update.

Outputs alias as the uncompiled call's do: a returned argument or captured
tensor is that tensor, a view of one (or a no-op conversion) shares its memory,
and outputs that share a storage while tracing share one after a replay.
"""

from __future__ import annotations

import functools
import gc
import linecache
import os
import sys
import traceback
import warnings
import weakref

import numpy as np

from ..ir import build as b
from ..ir.graph import Graph, toposort
from ..ir.ops import Op
from ..ir.passes.pipeline import lower
from ..ir.view import View
from ..runtime import buffers as rb
from ..runtime.cache import canonical
from ..runtime.compiled import _fold, lookup
from ..runtime.config import options
from ..runtime.context import current, switch
from ..runtime.execute import run
from ..runtime.interpreter import _strided
from ..runtime.triton_launch import available as triton_available
from . import mode, scalars, storage
from .inplace import copy_
from .tensor import Tensor, _new, from_array

__all__ = ["compile", "explain", "GraphBreak"]


class GraphBreak(RuntimeError):
    """A traced function needed a concrete value (raised with `fullgraph=True`)."""


class _Seen:
    """A storage from outside the trace that the function read, and its state before."""

    __slots__ = ("storage", "node", "buffer", "version", "pending_writes")

    def __init__(self, st: storage.Storage):
        self.storage = st
        self.node = st.node
        self.buffer = st.buffer
        self.version = st.version
        self.pending_writes = st.pending_writes

    def restore(self) -> None:
        """Undo what the trace did to the storage (its writes hold placeholder values)."""
        st = self.storage
        if st.buffer is not self.buffer:
            st._adopt(self.buffer, self.node.shape)
        st.node = self.node
        st.version = self.version
        st.pending_writes = self.pending_writes


class _Trace:
    """What a trace sees: the storages it makes and the outside tensors it reads.

    `start`: buffers numbered below it existed before the trace (the placeholders
    and every tensor the function captures); reading one's value is a graph break.
    """

    def __init__(self):
        self.start = 0
        self.broke: str | None = None
        self.backward_ran = False            # a backward() consumed the graph
        self.inputs: set[int] = set()   # ids of the placeholders' storages
        self.created: dict[int, tuple] = {}  # id(storage) -> (weak ref, user line)
        self.seen: dict[int, _Seen] = {}     # id(storage) -> its state before the trace
        self.roots: dict[int, tuple] = {}    # id(tensor) -> (tensor, requires_grad, .grad)

    def made(self, st: storage.Storage) -> None:
        """A storage was made while tracing (see Storage.__init__)."""
        self.created[id(st)] = (weakref.ref(st), _user_frame())

    def read(self, t: Tensor) -> None:
        """The function read t's value (see Tensor.node): note it if it is captured."""
        st = t._storage
        key = id(st)
        if self.made_here(st) or key in self.inputs:
            return
        if key not in self.seen:
            if not st.is_realized:
                # NOTE: a storage made before the trace cannot depend on the placeholders:
                # its pending value is computed now, as the uncompiled call would.
                active = switch(trace=None).trace
                try:
                    storage.realize_storages([st])
                finally:
                    switch(trace=active)
            self.seen[key] = _Seen(st)
        root = t._base if t._base is not None else t
        if id(root) not in self.roots and not root._detached:
            self.roots[id(root)] = (root, root._requires_grad, root._grad)

    def made_here(self, st: storage.Storage) -> bool:
        """Whether the trace made `st`.

        NOTE: by identity, not only by id(): a storage the trace made and freed leaves its
        id to the next object, possibly one made outside the trace (an optimizer's state
        made on its first step), which must still be captured.
        """
        entry = self.created.get(id(st))
        return entry is not None and entry[0]() is st

    def touch(self, t: Tensor) -> None:
        """The function reads or sets t's .grad (see Tensor.grad): note t's state before."""
        key = id(t._storage)
        if not self.made_here(t._storage) and key not in self.inputs and id(t) not in self.roots \
                and not t._detached:
            self.roots[id(t)] = (t, t._requires_grad, t._grad)

    def is_input(self, st: storage.Storage) -> bool:
        """Whether realised `st` is a placeholder or a captured tensor (value unknown)."""
        return st.buffer.uid < self.start

    def value_read(self, st: storage.Storage) -> None:
        """A realised storage's value is read (see Storage.array)."""
        if self.is_input(st):
            graph_break()

    def realizing(self, nodes) -> None:
        """Pending values are about to be computed (see realize_storages): a graph break
        when they read a placeholder or a captured tensor, whose values are unknown."""
        if depends_on_inputs(nodes):
            graph_break()

    def restore(self) -> None:
        for seen in self.seen.values():
            seen.restore()
        for root, _, grad in self.roots.values():
            root._grad = grad


def depends_on_inputs(nodes) -> bool:
    """Whether computing `nodes` reads a placeholder or a captured tensor of the trace."""
    trace = current().trace
    if trace is None:
        return False
    start = trace.start
    return any(n.op is Op.BUFFER and n.arg < start for n in toposort(nodes))


# NOTE: the source folders of ember's packages (public/ installs as `ember` itself)
_PACKAGE_DIRS = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), d) + os.sep for d in ("tracer", "ir", "runtime", "codegen", "public",
                                       "nn", "optim"))
_in_package: dict = {}  # code object -> whether it is ember's own code


def _user_frame() -> tuple[str, int]:
    """(file, line) of the innermost frame of user code (cheap: no source is read)."""
    f = sys._getframe(1)
    while f is not None:
        code = f.f_code
        inside = _in_package.get(code)
        if inside is None:
            inside = _in_package[code] = os.path.abspath(code.co_filename).startswith(
                _PACKAGE_DIRS)
        if not inside:
            return code.co_filename, f.f_lineno
        f = f.f_back
    return "<unknown>", 0


def _user_line() -> str:
    """The innermost line of user code on the stack (where the value was needed)."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIRS):
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "<unknown line>"


def _line_text(filename: str, lineno: int) -> str:
    return f"{filename}:{lineno}: {linecache.getline(filename, lineno).strip()}"


def graph_break() -> None:
    """Called when a traced function needs a value: abort the trace."""
    line = _user_line()
    current().trace.broke = line
    raise GraphBreak(f"graph break: a concrete value was needed while tracing, at {line}")


# -- signatures --------------------------------------------------------------------

def _signature(args, kwargs) -> tuple:
    parts = []
    storages: dict[int, int] = {}
    for i, a in enumerate(list(args) + [kwargs[k] for k in sorted(kwargs)]):
        if isinstance(a, Tensor):
            g = a._grad
            # NOTE: arguments sharing a storage alias each other: the first one's index
            alias = storages.setdefault(id(a._storage), i)
            parts.append(("T", tuple(a.shape), a.dtype, a._storage.device, a._requires_grad,
                          None if g is None else (tuple(g.shape), g.dtype), alias))
        elif type(a) is float:
            parts.append(_FLOAT)  # NOTE: by value only where the program says so
        else:
            try:
                hash(a)
            except TypeError:
                a = ("id", id(a))
            parts.append(a)
    return tuple(sorted(kwargs)), tuple(parts), mode.is_grad_enabled()


class _Float:
    """A float argument's part of a signature (its value is guarded by the program,
    where it must be: `scalars.check`)."""

    def __repr__(self) -> str:
        return "float"


_FLOAT = _Float()


def _fmt_part(p) -> str:
    if isinstance(p, tuple) and p and p[0] == "T":
        _, shape, dtype, device, requires_grad, grad, alias = p
        text = f"{dtype.short}[{','.join(map(str, shape))}]"
        if device != "cpu":
            text += f"@{device}"
        if requires_grad:
            text += " requires_grad"
        if grad is not None:
            text += " with .grad"
        return text
    return repr(p)


def _fmt_signature(sig: tuple) -> str:
    return "(" + ", ".join(_fmt_part(p) for p in sig[1]) + ")"


_FIELDS = ("shape", "dtype", "device", "requires_grad")


def _describe_part(i: int, a, c) -> str:
    """Why argument i's guard failed, naming the field that changed."""
    if isinstance(a, tuple) and isinstance(c, tuple) and a[:1] == c[:1] == ("T",):
        for name, x, y in zip(_FIELDS, a[1:5], c[1:5]):
            if x != y:
                return f"argument {i}: {name} changed {x} -> {y}"
        if a[5] != c[5]:
            return f"argument {i} changed its .grad: {_fmt_grad(a[5])} -> {_fmt_grad(c[5])}"
        return f"argument {i}: which arguments share memory changed"
    return f"argument {i} changed: {_fmt_part(a)} -> {_fmt_part(c)}"


def _fmt_grad(g) -> str:
    return "None" if g is None else f"{g[1].short}[{','.join(map(str, g[0]))}]"


def _describe_guard(old: tuple, new: tuple) -> str:
    if old[0] != new[0]:
        return f"keyword arguments changed: {old[0]} -> {new[0]}"
    if old[2] != new[2]:
        return f"grad mode changed: {old[2]} -> {new[2]}"
    for i, (a, c) in enumerate(zip(old[1], new[1])):
        if a != c:
            return _describe_part(i, a, c)
    return "the number of arguments changed"


# -- one traced program ---------------------------------------------------------

# NOTE: the trace took the argument and the captured tensor for two tensors: such a
# call runs uncompiled (tracing again would give a program no other call could use)
_ALSO_PASSED = "a captured tensor is also passed as an argument"


class _Program:
    """A traced signature: output nodes, where its inputs come from, and write-backs.

    Inputs are the placeholders' buffers (arguments and their `.grad`s), then the
    captures: ("storage", weak ref) reads a captured storage's current value,
    ("grad", r) the `.grad` of captured tensor r. `roots` guard the captured
    tensors: (weak ref, requires_grad, .grad's (shape, dtype) or None, needed).
    """

    def __init__(self, outputs, structure, placeholders, cap_sources, writes, grads, seq0,
                 n_random, captures, roots, cap_writes, root_grads):
        self.outputs = outputs            # nodes: fresh storages, writes, grads
        self.structure = structure        # (treedef, leaf specs: see _record)
        self.placeholders = placeholders  # [(argument index, Buffer, is_grad)]
        # the Buffers read at trace time, by input position: placeholders, then captures
        self.sources = [buf for _, buf, _ in placeholders] + cap_sources
        self.writes = writes              # [(argument index, output index)]
        self.grads = grads                # [(argument index, output index)]
        self.captures = captures          # [("storage", weak ref) | ("grad", root index)]
        self.roots = roots                # [(weak ref, requires_grad, grad spec, needed)]
        self.cap_writes = cap_writes      # [(capture index, output index)]
        self.root_grads = root_grads      # [(root index, output index)]
        self.seq0 = seq0                  # the first random sequence number of the trace
        self.n_random = n_random          # random ops the function draws per call
        self.entry = None                 # the cached compiled program, once looked up
        self.inputs = None                # program input i <- ("arg", k) or ("const", array)
        self.params = None                # RAND parameters (seed, sequence) at trace time
        self.scalar_slots: list = []      # [(runtime parameter, float argument index)]
        self.scalar_guards: list = []     # [(float argument index, value)]: by value
        self.views: dict = {}             # (argument view, leaf view) -> composed view
        self.bindings: list = []          # [(name, read the name now, weak ref at trace)]
        self.nodes = len(toposort(outputs))

    def _prepare(self, backend: str = "auto") -> None:
        """Find the compiled program once, and where each of its inputs comes from."""
        entry, inputs, params = lookup(self.outputs, backend)
        by_array = {id(buf.array): k for k, buf in enumerate(self.sources)}
        self.inputs = [("arg", by_array[id(a)]) if id(a) in by_array else ("const", a)
                       for a in inputs]
        self.params = params
        self.entry = entry

    def bind(self, arg_storages) -> tuple | str:
        """(capture arrays, captured storages, captured tensors) now, or why they do not fit.

        A reason starting with "freed" means the program can never fit again.
        """
        for name, read, ref in self.bindings:
            if read() is not ref():
                return f"the tensor bound to {name!r} changed"
        roots = []
        for i, (ref, requires_grad, grad, needed) in enumerate(self.roots):
            t = ref()
            if t is None:
                if needed:
                    return "freed: a captured tensor was freed"
                roots.append(None)
                continue
            if t._requires_grad is not requires_grad:
                return (f"captured tensor {i}: requires_grad changed {requires_grad} -> "
                        f"{t._requires_grad}")
            g = t._grad
            if g is None if grad is None else (
                    g is not None and g._view.shape == grad[0] and g.dtype is grad[1]):
                roots.append(t)
                continue
            now = None if g is None else (tuple(g.shape), g.dtype)
            return f"captured tensor {i} changed its .grad: {_fmt_grad(grad)} -> {_fmt_grad(now)}"
        arrays, storages = [], []
        for kind, x in self.captures:
            if kind == "storage":
                st = x()
                if st is None:
                    return "freed: a captured tensor was freed"
                if id(st) in arg_storages:
                    return _ALSO_PASSED
                arrays.append(st.array())
                storages.append(st)
            else:
                arrays.append(_arg_array(roots[x]._grad))
                storages.append(None)
        return arrays, storages, roots

    def values(self, arrays: list[np.ndarray], backend: str,
               positional=()) -> list[np.ndarray] | None:
        """The outputs for these input arrays (and the call's arguments, `positional`, for
        the float arguments that are runtime parameters); None where only the function
        can tell."""
        use_compiled = "interpreter" not in (options.backend, backend)
        if not use_compiled and (self.n_random or self.scalar_slots):
            return None  # the interpreter cannot redraw nor rebind: run the function
        seed, seq0 = current().generator.draw(self.n_random)
        if use_compiled and self.entry is None:
            self._prepare(backend)
        if use_compiled and self.entry.fn is not None:
            inputs = [arrays[k] if kind == "arg" else k for kind, k in self.inputs]
            # NOTE: RAND parameters are (seed, sequence); a scalar's is its value
            params = [(seed, seq0 + p[1] - self.seq0) if type(p) is tuple else p
                      for p in self.params]
            for j, k in self.scalar_slots:
                params[j] = positional[k]
            with np.errstate(all="ignore"):
                return self.entry.fn(inputs, params)
        saved = [buf.array for buf in self.sources]
        try:
            for buf, a in zip(self.sources, arrays):
                buf.array = a
            return run(self.outputs)
        finally:
            for buf, a in zip(self.sources, saved):
                buf.array = a

    def describe(self) -> str:
        """The captured tensors, for `em.explain`."""
        parts = []
        for kind, x in self.captures:
            if kind == "storage":
                st = x()
                if st is None:
                    parts.append("(freed)")
                    continue
                text = f"{st.dtype.short}[{st.numel}]"
                owners = [r for r, _, _, _ in self.roots
                          if r() is not None and r()._storage is st]
                if owners:
                    t = owners[0]()
                    text = f"{t.dtype.short}[{','.join(map(str, t.shape))}]"
                    text += " requires_grad" if t._requires_grad else ""
                parts.append(text)
            else:
                parts.append(f".grad of captured tensor {x}")
        return ", ".join(parts)


def _flatten(obj, leaves: list):
    """(treedef, leaves) of tuples/lists/dicts; tensors become leaves."""
    if isinstance(obj, Tensor):
        leaves.append(obj)
        return ("T",)
    if isinstance(obj, (tuple, list)):
        return (type(obj), tuple(_flatten(o, leaves) for o in obj))
    if isinstance(obj, dict):
        return (dict, tuple((k, _flatten(v, leaves)) for k, v in obj.items()))
    return ("V", obj)


def _unflatten(tree, leaves):
    kind = tree[0]
    if kind == "T":
        return next(leaves)
    if kind == "V":
        return tree[1]
    if kind is dict:
        return {k: _unflatten(v, leaves) for k, v in tree[1]}
    items = [_unflatten(t, leaves) for t in tree[1]]
    return kind(items) if kind is list else tuple(items) if kind is tuple else kind(*items)


def _placeholder(t: Tensor, trace: _Trace) -> tuple[Tensor, rb.Buffer]:
    arr = np.zeros(t.numel(), dtype=t.dtype.np)
    p = from_array(arr.reshape(tuple(t.shape)), t.dtype, t._storage.device)
    trace.inputs.add(id(p._storage))
    return p, p._storage.buffer


def _arg_array(t: Tensor) -> np.ndarray:
    st = t._storage
    if t._view.is_full(st.numel):
        return st.array()
    return np.ascontiguousarray(t._array()).reshape(-1)


def _trace(fn, args, kwargs, reads: set | None = None) -> _Program | str:
    """Run fn on placeholders; a _Program, or the reason it cannot be replayed.

    `reads`: where the function's code reads a float argument (its positions go there:
    see tracer/scalars.py)."""
    trace = _Trace()
    placeholders, proxies = [], []
    positional = list(args) + [kwargs[k] for k in sorted(kwargs)]
    tensors = [a for a in positional if isinstance(a, Tensor)]
    if len({id(a._storage) for a in tensors}) != len(tensors):
        return "two tensor arguments share memory (views of one tensor)"
    for k, a in enumerate(positional):
        if not isinstance(a, Tensor):
            proxies.append(scalars.wrap(a, k, reads) if reads is not None else a)
            continue
        p, buf = _placeholder(a, trace)
        placeholders.append((k, buf, False))
        if a._requires_grad:
            p.requires_grad_(True)
        if a._grad is not None:
            g, gbuf = _placeholder(a._grad, trace)
            p._grad = g
            placeholders.append((k, gbuf, True))
        proxies.append(p)
    trace.start = next(rb._uids)  # NOTE: every buffer made before the trace has a lower uid
    n_args = len(args)
    call_args = proxies[:n_args]
    call_kwargs = dict(zip(sorted(kwargs), proxies[n_args:]))
    before = {k: (p._storage.node, p._grad, None if p._grad is None else p._grad._storage.node)
              for k, p in enumerate(proxies) if isinstance(p, Tensor)}
    # NOTE: the trace draws from a generator of its own, starting where the thread's one
    # stands: that one (shared by all threads) moves only when the replay (or, after a
    # graph break, the function itself) draws, so no other thread's draws are repeated
    generator = current().generator.fork()
    seq0 = generator.position()[1]
    prev = switch(trace=trace, eager=False, generator=generator)
    try:
        try:
            result = fn(*call_args, **call_kwargs)
        except GraphBreak:
            return f"graph break at {trace.broke}"
        finally:
            switch(trace=prev.trace, eager=prev.eager, generator=prev.generator)
        n_random = generator.position()[1] - seq0
        consumed = trace.backward_ran
        leaves: list[Tensor] = []
        tree = _flatten(result, leaves)
        del result
        if mode.is_grad_enabled() and not consumed and any(t._requires_grad for t in leaves):
            return "a returned tensor requires grad and no backward() ran inside the function"
        program = _record(trace, tree, leaves, proxies, before, placeholders, seq0, n_random)
    finally:
        trace.restore()
    if isinstance(program, str):
        return program
    escaped = _escaped(trace, leaves, proxies)
    return program if escaped is None else _Escape(
        f"graph break at {_line_text(*escaped)}: a tensor computed inside the function is "
        "kept outside it (pass it in or return it instead)")


class _Escape(str):
    """The reason a trace failed because a value it made outlives the call.

    NOTE: state made on the first call and kept afterwards (an optimizer's lazily
    created buffers) escapes only once, so such a signature is traced once more.
    """


def _record(trace: _Trace, tree, leaves, proxies, before, placeholders, seq0, n_random):
    """The _Program of a finished trace (before the captured storages are restored)."""
    for t in leaves:
        trace.read(t)  # NOTE: a tensor from outside returned unread is captured too
    writes, grads, root_grads = [], [], []
    outputs: list = []
    for k, (node_before, grad_before, grad_node_before) in before.items():
        p = proxies[k]
        if p._storage.node is not node_before:
            writes.append((k, len(outputs)))
            outputs.append(b.reshape(p._storage.node, (p._storage.numel,)))
        if p._grad is None:
            if grad_before is not None:
                grads.append((k, None))  # set to None inside the function
        elif p._grad is not grad_before or p._grad._storage.node is not grad_node_before:
            grads.append((k, len(outputs)))
            outputs.append(b.cast(p._grad.node, p.dtype))
    # the captured tensors, and which of their storages hold a captured tensor's .grad
    roots = [r for r in trace.roots.values()
             if id(r[0]._storage) in trace.seen or r[0]._grad is not r[2]]
    root_index = {id(r[0]): i for i, r in enumerate(roots)}
    grad_of = {}
    for i, (root, _, grad) in enumerate(roots):
        if grad is not None and grad._view.is_full(grad._storage.numel) and \
                id(grad._storage) in trace.seen:
            grad_of.setdefault(id(grad._storage), i)
        if root._grad is not grad:  # a new .grad object, or None
            root_grads.append((i, None if root._grad is None else len(outputs)))
            if root._grad is not None:
                outputs.append(b.cast(root._grad.node, root.dtype))
    for i, (root, _, _) in enumerate(roots):
        if id(root._storage) in grad_of:  # a .grad: its object may change between calls
            roots[i] = None
    written = []
    for key, seen in trace.seen.items():
        st = seen.storage
        if st.node is not seen.node:
            written.append((key, len(outputs)))
            outputs.append(b.reshape(st.node, (st.numel,)))
    specs, fresh = [], {}
    arg_of = {id(p._storage): k for k, p in enumerate(proxies) if isinstance(p, Tensor)}
    arg_grad_of = {id(p._grad._storage): k for k, p in enumerate(proxies)
                   if isinstance(p, Tensor) and p._grad is not None}
    root_grad_of = {id(r[0]._grad._storage): i for i, r in enumerate(roots)
                    if r is not None and r[0]._grad is not None}
    for t in leaves:
        key = id(t._storage)
        if key in arg_of:
            k = arg_of[key]
            spec = ("arg", k, proxies[k] is t)
        elif key in arg_grad_of:
            k = arg_grad_of[key]
            spec = ("arggrad", k, proxies[k]._grad is t)
        elif key in root_grad_of or key in grad_of:
            r = root_grad_of.get(key, grad_of.get(key))
            spec = ("rootgrad", r, roots[r] is not None and roots[r][0]._grad is t)
        elif key in trace.seen:
            r = root_index.get(id(t))
            spec = ("root", r, True) if r is not None and roots[r] is not None else (
                "capture", key, False)
        else:
            if key not in fresh:
                fresh[key] = len(outputs)
                outputs.append(b.reshape(t._storage.node, (t._storage.numel,)))
            spec = ("out", fresh[key], t._storage.node.shape)
        specs.append(spec + (t._view, t.dtype, t._detached))
    # the captures: storages the program reads, writes or returns
    used = {n.arg for n in toposort(outputs) if n.op is Op.BUFFER}
    keep = {key for key, _ in written} | {spec[1] for spec in specs if spec[0] == "capture"}
    captures, cap_sources, cap_index = [], [], {}
    for key, seen in trace.seen.items():
        if key not in keep and seen.buffer.uid not in used:
            continue
        cap_index[key] = len(captures)
        captures.append(("grad", grad_of[key]) if key in grad_of else
                        ("storage", weakref.ref(seen.storage)))
        cap_sources.append(seen.buffer)
    cap_writes = [(cap_index[key], i) for key, i in written]
    specs = [(kind, cap_index[i] if kind == "capture" else i, *rest)
             for kind, i, *rest in specs]
    needed = {r for kind, r, *_ in specs if kind in ("root", "rootgrad")}
    needed |= {r for r, _ in root_grads} | {x for kind, x in captures if kind == "grad"}
    guards = [None if r is None else (weakref.ref(r[0]), r[1],
                                      None if r[2] is None else (tuple(r[2].shape), r[2].dtype),
                                      i in needed)
              for i, r in enumerate(roots)]
    # NOTE: a .grad storage's own guard is its tensor's; it never needs one of its own
    guards = [g if g is not None else (_ALWAYS, False, None, False) for g in guards]
    return _Program(outputs, (tree, specs), placeholders, cap_sources, writes, grads, seq0,
                    n_random, captures, guards, cap_writes, root_grads)


def _always():
    return None


_ALWAYS = _always  # a guard slot that always passes (its tensor is a captured .grad)


def _escaped(trace: _Trace, leaves, proxies) -> tuple[str, int] | None:
    """Where a tensor the trace computed was made, if it is still held outside the call."""
    keep = {id(t._storage) for t in leaves}
    keep |= {id(p._grad._storage) for p in proxies if isinstance(p, Tensor) and
             p._grad is not None}

    def alive():
        for key, (ref, line) in trace.created.items():
            st = ref()
            if st is not None and key not in keep and not st.is_realized:
                return line
        return None

    if alive() is None:
        return None
    gc.collect()  # NOTE: autograd records form cycles; only a live holder counts
    return alive()


def _dense(v: np.ndarray) -> bool:
    """Whether v's elements fill one block of memory (in some order of its dims)."""
    expected = v.itemsize
    for stride, size in sorted(zip(v.strides, v.shape)):
        if size != 1:
            if stride != expected:
                return False
            expected *= size
    return True


def _owned(v: np.ndarray, arrays: list[np.ndarray], roots: set[int]) -> np.ndarray:
    """v, or a copy where it is not memory a new tensor may own.

    A compiled program's outputs are fresh arrays; a copy is needed only for an output
    that is an input (or a view of one), memory an earlier output took (`roots`: ids
    of the arrays owning it), or a read-only or broadcast view (the interpreter returns
    those for constants and movement ops). A fresh result laid out as a transposed
    input is (`x.T * 2`) is kept as it is, as a lazy one is.
    """
    root = rb._root(v)
    if id(root) in roots or not v.flags.writeable or not (
            v.flags.c_contiguous or _dense(v)) or any(
            np.may_share_memory(v, a) for a in arrays):
        v = np.array(v)
        root = v
    roots.add(id(root))
    return v


def _write_back(target: Tensor, value: np.ndarray) -> None:
    st = target._storage
    flat = value.reshape(-1)
    if target._view.is_full(st.numel):
        st.assign(flat)
    else:
        with mode.no_grad():
            copy_(target, from_array(np.array(flat).reshape(tuple(target.shape)), target.dtype))


def _set_grad(t: Tensor, value: np.ndarray) -> None:
    """Make value t's .grad (written into the existing .grad, as backward() does)."""
    if t._grad is None:
        t._grad = from_array(value.reshape(tuple(t.shape)), t.dtype)
    else:
        _write_back(t._grad, value)


def _compose(outer: View, inner: View) -> View | None:
    """The view of outer's storage that `inner` (a view of outer's elements laid out
    contiguously) reads, or None where no strided view can say it."""
    if outer.is_contiguous():
        return View(inner.shape, inner.strides, inner.offset + outer.offset)
    if inner.numel == 0:
        return None
    where = np.zeros(outer.shape, dtype=np.int64) + outer.offset
    for d, (size, stride) in enumerate(zip(outer.shape, outer.strides)):
        where += (np.arange(size) * stride).reshape((size,) + (1,) * (outer.ndim - d - 1))
    picked = _strided(where.reshape(-1), inner)
    offset = int(picked.flat[0])
    strides = tuple(int(picked[(0,) * d + (1,) + (0,) * (inner.ndim - d - 1)]) - offset
                    if size > 1 else 0 for d, size in enumerate(inner.shape))
    view = View(inner.shape, strides, offset)
    expect = np.zeros(inner.shape, dtype=np.int64) + offset
    for d, (size, stride) in enumerate(zip(inner.shape, strides)):
        expect += (np.arange(size) * stride).reshape((size,) + (1,) * (inner.ndim - d - 1))
    return view if np.array_equal(expect, picked) else None


def _alias(program: _Program, real: Tensor, view: View, dtype, detached: bool) -> Tensor:
    """A tensor reading `view` of real's elements (as laid out contiguously)."""
    key = (real._view, view)
    composed = program.views.get(key, key)
    if composed is key:
        composed = program.views[key] = _compose(real._view, view)
    if composed is None:  # NOTE: the uncompiled op would have copied too (reshape)
        flat = np.ascontiguousarray(real._array()).reshape(-1)
        return from_array(np.array(_strided(flat, view)), dtype, real._storage.device)
    out = _new(real._storage, composed, dtype, real._base if real._base is not None else real)
    out._detached = detached
    return out


def _leaf(program, spec, positional, storages, roots, values, fresh) -> Tensor:
    """The returned tensor `spec` describes (see _record), for this call."""
    kind, i, whole, view, dtype, detached = spec
    if kind == "out":
        st = fresh.get(i)
        if st is None:
            st = fresh[i] = storage.Storage.from_array(values[i], dtype, "cpu", whole)
        out = _new(st, view, dtype, None)
        out._detached = detached
        return out
    if kind == "capture":
        st = storages[i]
        out = _new(st, view, dtype, None)
        out._detached = detached
        return out
    if kind == "root":
        return roots[i]
    real = positional[i] if kind == "arg" else positional[i]._grad if kind == "arggrad" \
        else roots[i]._grad
    return real if whole else _alias(program, real, view, dtype, detached)


class CompiledFunction:
    """A function compiled by `em.compile`: call it like the original."""

    def __init__(self, fn, fullgraph: bool, backend: str, dynamic: bool,
                 recompile_limit: int = 8):
        self.fn = fn
        self.fullgraph = fullgraph
        self.backend = backend
        self.dynamic = dynamic
        self.recompile_limit = recompile_limit
        self.programs: dict[tuple, list[_Program] | str] = {}
        self.traces = 0
        self.hits = 0
        self.reasons: list[str] = []
        self._last: tuple | None = None
        self._limited = False
        self._escapes: dict[tuple, str] = {}  # signatures whose trace kept a value outside
        functools.update_wrapper(self, fn)

    def _name(self) -> str:
        return getattr(self.fn, "__name__", "function")

    def __call__(self, *args, **kwargs):
        if current().eager:
            return self.fn(*args, **kwargs)
        sig = _signature(args, kwargs)
        entries = self.programs.get(sig)
        if isinstance(entries, str):
            return self.fn(*args, **kwargs)
        reason = None
        if entries:
            found = self._find(entries, args, kwargs)
            if not isinstance(found, str):
                self.hits += 1
                return self._replay(found[0], args, kwargs, found[1])
            if found == _ALSO_PASSED:
                return self.fn(*args, **kwargs)
            reason = found
        elif self._last is not None:
            reason = _describe_guard(self._last, sig)
        program = self._retrace(sig, reason, args, kwargs)
        if program is None:
            return self.fn(*args, **kwargs)
        bound = program.bind(_arg_storages(args, kwargs))
        if isinstance(bound, str):
            return self.fn(*args, **kwargs)
        return self._replay(program, args, kwargs, bound)

    def _find(self, entries: list, args, kwargs) -> tuple | str:
        """(program, bound captures) of the first entry whose guards pass, or why none."""
        arg_storages = _arg_storages(args, kwargs) if any(p.captures for p in entries) \
            else ()
        reason = None
        positional = list(args) + [kwargs[k] for k in sorted(kwargs)]
        for program in list(entries):
            bound = scalars.check(program, positional) if program.scalar_guards else None
            if bound is not None:
                reason = reason or bound
                continue
            bound = program.bind(arg_storages)
            if not isinstance(bound, str):
                return program, bound
            if bound.startswith("freed: "):
                entries.remove(program)
                bound = bound[len("freed: "):]
            reason = reason or bound
        return reason

    def _retrace(self, sig, reason, args, kwargs) -> _Program | None:
        """Trace for this call (None: run it uncompiled), within the recompile limit."""
        if self.traces >= self.recompile_limit:
            if not self._limited:
                self._limited = True
                warnings.warn(f"em.compile: {self._name()} reached its recompile limit "
                              f"({self.recompile_limit}) and runs uncompiled where no traced "
                              f"program fits; the guard that kept failing: {reason}",
                              stacklevel=3)
            return None
        if reason is not None:
            self.reasons.append(reason)
        self._last = sig
        self.traces += 1
        program = scalars.trace(_trace, self.fn, args, kwargs)
        if isinstance(program, str):
            if self.fullgraph:
                raise GraphBreak(f"{self._name()}: {program} (fullgraph=True)")
            retry = isinstance(program, _Escape) and sig not in self._escapes
            if self._escapes.get(sig) != program:
                warnings.warn(f"em.compile: {self._name()} runs uncompiled for this "
                              f"signature: {program}", stacklevel=3)
            if retry:
                self._escapes[sig] = program
            elif not self.programs.get(sig):
                self.programs[sig] = program
            return None
        program.bindings = _bindings(self.fn)
        entries = self.programs.get(sig)
        if not isinstance(entries, list):
            entries = self.programs[sig] = []
        entries.insert(0, program)
        return program

    def _replay(self, program: _Program, args, kwargs, bound):
        cap_arrays, storages, roots = bound
        positional = list(args) + [kwargs[k] for k in sorted(kwargs)]
        for k, _ in program.writes:
            positional[k]._storage.check_writable()  # before anything runs or changes
        arrays = [_arg_array(positional[k]._grad if is_grad else positional[k])
                  for k, _, is_grad in program.placeholders]
        arrays += cap_arrays
        values = program.values(arrays, self.backend, positional)
        if values is None:
            return self.fn(*args, **kwargs)
        roots_seen: set[int] = set()
        values = [_owned(v, arrays, roots_seen) for v in values]
        for k, i in program.writes:
            _write_back(positional[k], values[i])
        for k, i in program.grads:
            if i is None:
                positional[k]._grad = None
            else:
                _set_grad(positional[k], values[i])
        for j, i in program.cap_writes:
            st = storages[j]
            if st is None:
                _write_back(roots[program.captures[j][1]]._grad, values[i])
            else:
                st.assign(values[i].reshape(-1))
        for r, i in program.root_grads:
            t = roots[r]
            t._grad = None if i is None else from_array(values[i].reshape(tuple(t.shape)),
                                                         t.dtype)
        tree, specs = program.structure
        fresh: dict = {}
        leaves = iter([_leaf(program, spec, positional, storages, roots, values, fresh)
                       for spec in specs])
        return _unflatten(tree, leaves)

    def stats(self) -> dict:
        """{"traces": traces made, "hits": calls that replayed a trace, "programs":
        traced programs held, "uncompiled": signatures that run uncompiled}."""
        held = [e for e in self.programs.values() if isinstance(e, list)]
        return {"traces": self.traces, "hits": self.hits,
                "programs": sum(len(e) for e in held),
                "uncompiled": len(self.programs) - len(held)}

    def clear(self) -> None:
        """Forget every trace (the next call traces again) and reset the counters."""
        self.programs.clear()
        self._escapes.clear()
        self.reasons.clear()
        self.traces = self.hits = 0
        self._last = None
        self._limited = False

    def explain(self) -> str:
        lines = [f"{self._name()}: {self.traces} trace(s), {self.hits} cached call(s)"]
        for sig, entries in self.programs.items():
            if isinstance(entries, str):
                lines.append(f"  {_fmt_signature(sig)}: runs uncompiled: {entries}")
                continue
            for p in entries:
                if p.entry is None and not current().eager:
                    p._prepare()
                kernels = getattr(p.entry, "kernels", -1)
                lines.append(f"  {_fmt_signature(sig)}: one graph of {p.nodes} nodes, "
                             f"{kernels} kernel(s); writes back {len(p.writes)} argument(s) "
                             f"and {len(p.grads)} .grad(s)")
                if p.captures:
                    lines.append(f"    captures {len(p.captures)} tensor(s) it reads without "
                                 f"receiving them: {p.describe()}; writes back "
                                 f"{len(p.cap_writes)} of them and {len(p.root_grads)} new "
                                 f".grad(s)")
        for r in self.reasons:
            lines.append(f"  recompiled because {r}")
        if self._limited:
            lines.append(f"  reached the recompile limit ({self.recompile_limit}): runs "
                         "uncompiled where no traced program fits")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<compiled {self._name()}>"


def _bindings(fn) -> list:
    """The tensors fn names directly (closure cells, globals), to guard their identity.

    NOTE: a captured tensor is known by its storage; rebinding `w = em.tensor(...)`
    while the old tensor lives on elsewhere is seen only through these guards.
    """
    code = getattr(fn, "__code__", None)
    out = []
    for name, cell in zip(getattr(code, "co_freevars", ()), getattr(fn, "__closure__", None)
                          or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, Tensor):
            out.append((name, functools.partial(getattr, cell, "cell_contents"),
                        weakref.ref(value)))
    scope = getattr(fn, "__globals__", {})
    for name in getattr(code, "co_names", ()):
        value = scope.get(name)
        if isinstance(value, Tensor):
            out.append((name, functools.partial(scope.get, name), weakref.ref(value)))
    return out


def _arg_storages(args, kwargs) -> set[int]:
    """ids of the argument tensors' storages (a captured tensor must be none of them)."""
    out = {id(a._storage) for a in args if isinstance(a, Tensor)}
    if kwargs:
        out |= {id(a._storage) for a in kwargs.values() if isinstance(a, Tensor)}
    return out


def compile(fn=None, *, fullgraph: bool = False, backend: str = "auto",
            dynamic: bool = False, recompile_limit: int = 8):
    """Compile `fn` (also usable as `@em.compile` or `@em.compile(fullgraph=True)`).

    Each signature is traced once and replayed afterwards; the module's docstring
    has the details of guards and write-backs.

    Args:
        fn (callable): the function to compile. Its tensor arguments become inputs
            of the traced program; a float argument that only flows into tensor
            operations is a runtime parameter (a new value costs no trace); its other
            arguments, and floats its code reads in Python (`if lr > 0`, `lr * 2`),
            are guarded by value (by identity if they cannot be hashed).
        fullgraph (bool): raise `em.GraphBreak` at a graph break instead of warning
            and running the function uncompiled.
        backend (str): "auto" (the compiled NumPy path on the CPU), "numpy",
            "triton" or "interpreter".
        dynamic (bool): accepted for PyTorch compatibility; shapes are always
            specialised, and each new shape is traced as with `dynamic=False`.
        recompile_limit (int): the most traces per function; past it, the function
            runs uncompiled wherever no traced program fits, with one warning naming
            the guard that failed.

    Returns the compiled function (or, without `fn`, a decorator).

    What is captured: tensors the function reaches without receiving them as
    arguments (closures, globals, attributes, containers, module parameters).
    Each call reads their current value, their in-place updates and new `.grad`s
    are written back, and they are guarded like arguments. Python numbers,
    strings and shapes it reads stay constants of the trace, except float
    arguments that only flow into tensor operations (see `fn`): the first trace
    notes where the function's code reads a float, then traces once more with other
    values to find the constants that hold it (so its Python side effects happen
    twice on that call); a float it cannot follow to a constant is guarded by value.

    What is a graph break: anything that needs a value while tracing (`.item()`,
    `bool(t)`, `if t > 0:`, `.numpy()`, `.tolist()`, `print(t)`, indexing with a
    tensor's value) of an argument, of a captured tensor or of anything computed
    from one; a returned tensor that still needs autograd after the call (it
    requires grad and no `backward()` ran inside); and a tensor the function
    computes and keeps outside itself (`self.cache = t`). After a graph break the
    function runs as ordinary lazy code for that signature, with one warning
    naming the line (`fullgraph=True` raises instead). `em.explain(fn, *args)`
    says why a call traced again or broke.

    >>> import ember as em
    >>> w = em.tensor([1.0, 2.0])
    >>> @em.compile
    ... def f(x):
    ...     return (x * w).sum()
    >>> f(em.ones(2)).item()
    3.0
    >>> w.add_(10)
    tensor([11., 12.])
    >>> f(em.ones(2)).item()  # w is read at each call, not frozen in the trace
    23.0
    """
    if backend not in ("auto", "numpy", "triton", "interpreter"):
        raise ValueError(f"unknown backend {backend!r}; expected 'auto', 'numpy' or 'triton'")
    if backend == "triton":
        missing = triton_available()
        if missing is not None:
            raise RuntimeError(f"backend='triton': {missing}")
    if isinstance(recompile_limit, bool) or not isinstance(recompile_limit, int) or \
            recompile_limit < 1:
        raise ValueError(f"recompile_limit must be a positive int, got {recompile_limit!r}")
    if fn is None:
        return lambda f: CompiledFunction(f, fullgraph, backend, dynamic, recompile_limit)
    return CompiledFunction(fn, fullgraph, backend, dynamic, recompile_limit)


def explain(fn, *args, graph: bool = False, **kwargs):
    """How `fn` compiles for these arguments: graph breaks, graph size, kernels, captured
    tensors and recompiles (a text).

    With `graph=True`, the compiled graph of the last signature traced (of these
    arguments, when given) as a `networkx.DiGraph` instead: one vertex per node after
    simplification, with attributes `op`, `dtype`, `shape`, `arg`, `output` and `kernel`
    (the kernel's name in the schedule and the generated source, `k3`; None for inputs
    and constants), edges from inputs to users; None when that signature runs
    uncompiled.

    >>> import ember as em
    >>> f = em.compile(lambda x: (x * 2).exp().sum())
    >>> g = em.explain(f, em.ones(4), graph=True)
    >>> [d["op"] for _, d in g.nodes(data=True) if d["kernel"]]
    ['MUL', 'EXP', 'REDUCE_SUM']
    """
    target = fn if isinstance(fn, CompiledFunction) else CompiledFunction(fn, False, "auto",
                                                                          False)
    sig = None
    if args or kwargs:
        sig = _signature(args, kwargs)
        entries = target.programs.get(sig)
        if not entries:
            reason = None if target._last is None else _describe_guard(target._last, sig)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                target._retrace(sig, reason, args, kwargs)
    if not graph:
        return target.explain()
    entries = target.programs.get(sig if sig is not None else target._last)
    if not entries or isinstance(entries, str):
        return None
    return _fused_graph(entries[-1].outputs)


def _fused_graph(outputs):
    """The simplified graph of `outputs` as a networkx DiGraph, each vertex marked with
    the kernel the schedule puts it in (see `explain`)."""
    key, _, _ = canonical(outputs)
    plan = lower(Graph(key), fold=_fold, tile_elems=options.tile_elems)
    out = plan.graph.to_networkx()
    where = {id(n): f"k{g.id}" for g in plan.steps for n in g.nodes}
    for i, n in enumerate(plan.graph.nodes):
        out.nodes[i]["kernel"] = where.get(id(n))
    return out
