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

Python-side state. An object the trace depends on notes itself while tracing
(`note_state`: an `em.nn.Module` does when called, or when the function receives or
names it) with a function that reads its state (the `training` flags of it and its
submodules); the program is replayed only while that state reads the same.
`state_changed()` (called by `Module.train()`/`eval()` and by setting `.training`)
bumps one counter; a call re-reads the state only when the counter moved.

Dynamic dimensions (`dynamic=None` or True; tracer/dynamic.py has the design): when
a signature misses and two traced programs differ only in one size at the same dims
as it, the first program's graph is rebuilt at the new size (`_Template`, `_resize`)
and run by the template's one program for every size (`_Template.family`,
runtime/symbolic.py; a size it does not serve compiles its own), without running
the function; where that fails the dims are specialised again (traced per size)
and `em.explain` says why. Traces and such programs are counted apart (`stats()`:
"traces", "resized").

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

import copy
import functools
import gc
import linecache
import os
import sys
import traceback
import types
import warnings
import weakref

import numpy as np

from ..ir import build as b
from ..ir.graph import Graph, toposort
from ..ir.ops import Op
from ..ir.passes.pipeline import lower
from ..ir.view import View
from ..runtime import buffers as rb
from ..runtime import devices
from ..runtime.cache import canonical
from ..runtime.compiled import _fold, fusion_backend, lookup, resolve_backend
from ..runtime.config import options
from ..runtime.context import current, switch
from ..runtime.execute import run
from ..runtime.interpreter import _strided
from ..runtime.symbolic import SizeFamily
from ..runtime.triton_launch import available as triton_available
from . import mode, scalars, storage
from .checks import CheckError, CheckReport
from .dynamic import Fit, NotDynamic
from .inplace import copy_
from .tensor import Tensor, _new, from_array

__all__ = ["compile", "explain", "GraphBreak", "CheckError", "CheckReport"]


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
        self.lines: dict | None = None       # node -> (file, line) that built it (check=)
        self.autograd: dict[int, tuple] = {}  # id(tensor) -> (tensor, _rg, _grad_fn, version)
        self.late: set[int] = set()  # uids of captured buffers realised during the trace
        self.states: dict[int, tuple] = {}   # id(obj) -> (weak ref, read, value, label)

    def made(self, st: storage.Storage) -> None:
        """A storage was made while tracing (see Storage.__init__)."""
        frame = _user_frame()
        self.created[id(st)] = (weakref.ref(st), frame)
        if self.lines is not None:
            self.lines.setdefault(st.node, frame)

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
                # NOTE: its buffer is newer than the trace's start, and still an input
                self.late.add(st.buffer.uid)
            self.seen[key] = _Seen(st)
        self._note_autograd(t)  # NOTE: a view's record may be rebuilt while tracing
        root = t._base if t._base is not None else t
        if id(root) not in self.roots and not root._detached:
            self.roots[id(root)] = (root, root._requires_grad, root._grad)
            self._note_autograd(root)

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
            self._note_autograd(t)

    def _note_autograd(self, t: Tensor) -> None:
        """Keep t's autograd state before the trace (an in-place op may record on t)."""
        self.autograd.setdefault(id(t), (t, t._rg, t._grad_fn, t._fn_version))

    def autograd_changed(self, proxies) -> str | None:
        """Why the trace cannot be replayed, where an in-place op recorded autograd
        history on an argument or a captured tensor (`c.mul_(w)`, w requiring grad):
        a replay writes values back, never a record."""
        for t, rg, fn, _ in self.autograd.values():
            if t._rg != rg or t._grad_fn is not fn:
                return "an in-place op gave a captured tensor autograd history"
        for k, p in enumerate(proxies):
            if isinstance(p, Tensor) and p._grad_fn is not None:
                return f"an in-place op gave argument {k} autograd history"
        return None

    def is_input(self, st: storage.Storage) -> bool:
        """Whether realised `st` is a placeholder or a captured tensor (value unknown)."""
        uid = st.buffer.uid
        return uid < self.start or uid in self.late

    def value_read(self, st: storage.Storage) -> None:
        """A realised storage's value is read (see Storage.array)."""
        # NOTE: a tensor from outside that nothing read as a node (`w.detach().numpy()`)
        # was realised just now: its value is an input too
        if self.is_input(st) or (id(st) not in self.created and id(st) not in self.inputs):
            graph_break()

    def value_shared(self, st: storage.Storage) -> None:
        """A storage's memory is about to be shared with NumPy (`numpy()`, `np.asarray(t)`):
        always a graph break. NOTE: even a value computed inside the trace from no input
        (`em.zeros(2).numpy()`): a replay would return the trace's one array again, and
        in-place writes the trace records would not reach it."""
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
        for t, rg, fn, version in self.autograd.values():
            t._rg, t._grad_fn, t._fn_version = rg, fn, version


# -- Python-side state a trace depends on ----------------------------------------

_STATE_EPOCH = [0]  # bumped whenever guarded Python-side state may have changed


def state_changed() -> None:
    """Say that Python-side state a trace may depend on changed (`Module.train()` calls
    it): compiled functions re-check their state guards on their next call only then."""
    _STATE_EPOCH[0] += 1


def note_state(obj, read, label: str) -> None:
    """While tracing, record that the trace depends on `read(obj)` (Python-side state,
    such as a module's `training` flags): the program is replayed only while
    `read(obj)` gives the same value. `label` names `obj` in `em.explain`.

    Cheap outside a trace (one context read); each object is noted once per trace.
    """
    trace = current().trace
    if trace is None or id(obj) in trace.states:
        return
    trace.states[id(obj)] = (weakref.ref(obj), read, read(obj), label)


def _check_states(states) -> str | None:
    """Why guarded Python-side state no longer matches its trace (None: it does)."""
    for ref, read, value, label in states:
        obj = ref()
        if obj is None:
            return f"freed: {label} was freed"
        now = read(obj)
        if now != value:
            return f"{label}: {_state_change(value, now)}"
    return None


def _state_change(old, new) -> str:
    """The first difference of two state values (pairs of (name, value) name theirs)."""
    if isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new):
        for a, c in zip(old, new):
            if a != c:
                if isinstance(a, tuple) and len(a) == 2 and isinstance(c, tuple) and \
                        a[0] == c[0]:
                    return f"{a[0]} changed {a[1]} -> {c[1]}"
                return f"changed {a} -> {c}"
    return f"changed {old} -> {new}"


def depends_on_inputs(nodes) -> bool:
    """Whether computing `nodes` reads a placeholder or a captured tensor of the trace."""
    trace = current().trace
    if trace is None:
        return False
    start, late = trace.start, trace.late
    return any(n.op is Op.BUFFER and (n.arg < start or n.arg in late)
               for n in toposort(nodes))


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
        self.device = "cpu"               # where the program runs (its results' device)
        self.out_devices = {}             # output index -> device of its fresh storage
        self.inputs = None                # program input i <- ("arg", k) or ("const", array)
        self.params = None                # RAND parameters (seed, sequence) at trace time
        self.scalar_slots: list = []      # [(runtime parameter, float argument index)]
        self.scalar_values: dict = {}     # float argument index -> its value at trace time
        self.scalar_guards: list = []     # [(float argument index, value)]: by value
        self.views: dict = {}             # (argument view, leaf view) -> composed view
        self.bindings: list = []          # [(name, read the name now, weak ref at trace)]
        self.states: tuple = ()           # Python-side state guards (see note_state)
        self.resized = False              # made from two traces at other sizes (_resize)
        self.state_epoch = 0              # _STATE_EPOCH when they last passed
        self.nodes = len(toposort(outputs))
        self.lines: dict | None = None    # node -> (file, line) that built it (check=)
        self.retained: list = []          # [(leaf index, output index)]: retained .grads
        self.template = None              # the _Template it was resized by, and at what size
        self.size = 0

    def _prepare(self, backend: str = "auto") -> None:
        """Find the compiled program once, and where each of its inputs comes from: a
        program resized for a dynamic size runs its template's program for every size
        where that serves (runtime/symbolic.py)."""
        found = None
        if self.template is not None and self.device == "cpu" \
                and resolve_backend(backend) == "numpy":
            found = self.template.family().lookup(self.outputs, self.size)
        entry, inputs, params = found or lookup(self.outputs, backend, self.device)
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
        if self.states and self.state_epoch != _STATE_EPOCH[0]:
            changed = _check_states(self.states)
            if changed is not None:
                return changed
            self.state_epoch = _STATE_EPOCH[0]
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
                arrays.append(st.raw())
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
            inputs = devices.all_in(inputs, self.device)  # NOTE: another device's: copied
            # NOTE: RAND parameters are (seed, sequence); a scalar's is its value
            params = [(seed, seq0 + p[1] - self.seq0) if type(p) is tuple else p
                      for p in self.params]
            for j, k in self.scalar_slots:
                params[j] = positional[k]
            with np.errstate(all="ignore"):
                if self.device == "cpu":
                    return self.entry.fn(inputs, params)
                with devices.on(self.device):
                    return self.entry.fn(inputs, params)
        saved = [buf.array for buf in self.sources]
        try:
            for buf, a in zip(self.sources, arrays):
                buf.array = a
            return run(self.outputs, self.device)
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
    if kind is list:
        return items
    # NOTE: a namedtuple takes its fields; other tuple types (em.Size) one sequence
    return kind(*items) if hasattr(kind, "_fields") else kind(items)


def _placeholder(t: Tensor, trace: _Trace) -> tuple[Tensor, rb.Buffer]:
    arr = np.zeros(t.numel(), dtype=t.dtype.np)
    p = from_array(arr.reshape(tuple(t.shape)), t.dtype, t._storage.device)
    trace.inputs.add(id(p._storage))
    return p, p._storage.buffer


def _arg_array(t: Tensor):
    """An argument's elements as a flat array in its device's memory."""
    st = t._storage
    if t._view.is_full(st.numel):
        return st.raw()
    return devices.to_memory(np.ascontiguousarray(t._array()).reshape(-1), st.device)


def _trace(fn, args, kwargs, reads: set | None = None, lines: bool = False) -> _Program | str:
    """Run fn on placeholders; a _Program, or the reason it cannot be replayed.

    `reads`: where the function's code reads a float argument (its positions go there:
    see tracer/scalars.py); `lines`: note the user's line that built each node (for
    `check=`)."""
    trace = _Trace()
    if lines:
        trace.lines = {}
    placeholders, proxies = [], []
    positional = list(args) + [kwargs[k] for k in sorted(kwargs)]
    tensors = [a for a in positional if isinstance(a, Tensor)]
    if len({id(a._storage) for a in tensors}) != len(tensors):
        return "two tensor arguments share memory (views of one tensor)"
    for k, a in enumerate(positional):
        # NOTE: a placeholder is a leaf: the history of one that is not (it has a record,
        # or requires grad only through its base) cannot be replayed
        if isinstance(a, Tensor) and a._requires_grad and (a._grad_fn is not None or
                                                           not a._rg):
            return f"argument {k} requires grad and is not a leaf"
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
    epoch = _STATE_EPOCH[0]
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
            _note_reached(fn, positional)
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
        program = trace.autograd_changed(proxies) or _record(
            trace, tree, leaves, proxies, before, placeholders, seq0, n_random)
    finally:
        trace.restore()
    if isinstance(program, str):
        return program
    program.lines = trace.lines
    program.states = tuple(trace.states.values())
    program.state_epoch = epoch
    escaped = _escaped(trace, leaves, proxies)
    return program if escaped is None else _Escape(
        f"graph break at {_line_text(*escaped)}: a tensor computed inside the function is "
        "kept outside it (pass it in or return it instead)")


def _note_reached(fn, positional) -> None:
    """Note the guarded state of objects fn reaches by name or receives (arguments,
    closure cells, globals, a bound method's object): any with `_note_trace_state`
    (an `em.nn.Module`). Objects reached otherwise note theirs when used (a module
    when it is called)."""
    code = getattr(fn, "__code__", None)
    reached = [fn, *positional]
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        reached.append(owner)
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            reached.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    scope = getattr(fn, "__globals__", {})
    reached += [scope.get(name) for name in getattr(code, "co_names", ())]
    for obj in reached:
        note = getattr(type(obj), "_note_trace_state", None)
        if note is not None:
            note(obj)


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
    # NOTE: a root whose .grad alone was read or written (a backward() on the leaf
    # itself) is kept: its .grad is read through it at each call
    roots = [r for r in trace.roots.values()
             if id(r[0]._storage) in trace.seen or r[0]._grad is not r[2] or (
                 r[2] is not None and id(r[2]._storage) in trace.seen)]
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
    specs, fresh, out_devices = [], {}, {}
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
            # NOTE: a view of a captured tensor is a view of it (its base) after a replay
            base = root_index.get(id(t._base)) if t._base is not None else None
            if r is not None and roots[r] is not None:
                spec = ("root", r, True)
            elif base is not None and roots[base] is not None and not t._detached and \
                    t._base._view.is_full(t._storage.numel):
                spec = ("rootview", base, False)
            else:
                spec = ("capture", key, False)
        else:
            if key not in fresh:
                fresh[key] = len(outputs)
                out_devices[len(outputs)] = t._storage.device
                outputs.append(b.reshape(t._storage.node, (t._storage.numel,)))
            spec = ("out", fresh[key], t._storage.node.shape)
        # NOTE: a result whose graph a backward() inside consumed still requires grad
        # uncompiled (a spent record): its record's name, to give the replay's one
        spent = None
        if t._requires_grad:
            # NOTE: a view requiring grad through its base gets its record when read; a
            # leaf made inside ("" here) requires grad with no record
            spent = t._grad_fn.name() if t._grad_fn is not None else "" if t._rg else \
                "AsStridedBackward0"
        specs.append(spec + (t._view, t.dtype, t._detached, spent))
    # returned non-leaf tensors that retain their grad: their .grad is an output too
    retained = []
    for j, t in enumerate(leaves):
        if t._retains_grad and t._grad is not None and t._grad_fn is not None:
            retained.append((j, len(outputs)))
            outputs.append(b.reshape(b.cast(t._grad.node, t.dtype), (t._grad.numel(),)))
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
    needed = {r for kind, r, *_ in specs if kind in ("root", "rootgrad", "rootview")}
    needed |= {r for r, _ in root_grads} | {x for kind, x in captures if kind == "grad"}
    guards = [None if r is None else (weakref.ref(r[0]), r[1],
                                      None if r[2] is None else (tuple(r[2].shape), r[2].dtype),
                                      i in needed)
              for i, r in enumerate(roots)]
    # NOTE: a .grad storage's own guard is its tensor's; it never needs one of its own
    guards = [g if g is not None else (_ALWAYS, False, None, False) for g in guards]
    program = _Program(outputs, (tree, specs), placeholders, cap_sources, writes, grads,
                       seq0, n_random, captures, guards, cap_writes, root_grads)
    program.retained = retained
    program.out_devices = out_devices
    # NOTE: the program runs where its results live: a value stored on another device
    # (a returned `x.cpu()`) is copied there, as any realisation's
    program.device = next(iter(out_devices.values()), None) or next(
        (buf.device for buf in program.sources), "cpu")
    return program


def _always():
    return None


_ALWAYS = _always  # a guard slot that always passes (its tensor is a captured .grad)


def _escaped(trace: _Trace, leaves, proxies) -> tuple[str, int] | None:
    """Where a tensor the trace computed was made, if it is still held outside the call."""
    keep = {id(t._storage) for t in leaves}
    keep |= {id(p._grad._storage) for p in proxies if isinstance(p, Tensor) and
             p._grad is not None}
    # NOTE: the returned tensors (the trace's) keep what their records saved alive: that
    # is no escape, so they are let go of first
    leaves.clear()

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


def _by_owner(arrays: list[np.ndarray]) -> tuple[dict, list]:
    """The arrays grouped by the id of the array owning their memory (device tensors by
    their storage: `buffers._root_key`), and those whose memory no array owns (a view of
    a `bytes`, an mmap or another object's buffer)."""
    owners: dict[int, list[np.ndarray]] = {}
    foreign = []
    for a in arrays:
        if not isinstance(a, np.ndarray):  # NOTE: device memory, owned by its storage
            owners.setdefault(rb._root_key(a), []).append(a)
            continue
        root = rb._root(a)
        if root.base is None:
            owners.setdefault(id(root), []).append(a)
        else:
            foreign.append(a)
    return owners, foreign


def _owned(v: np.ndarray, inputs: tuple[dict[int, list[np.ndarray]], list],
           roots: set[int]) -> np.ndarray:
    """v, or a copy where it is not memory a new tensor may own.

    A compiled program's outputs are fresh arrays; a copy is needed only for an output
    that is an input (or a view of one), memory an earlier output took (`roots`: ids
    of the arrays owning it), or a read-only or broadcast view (the interpreter returns
    those for constants and movement ops). A fresh result laid out as a transposed
    input is (`x.T * 2`) is kept as it is, as a lazy one is. `inputs` are the input
    arrays as `_by_owner` groups them. A device value is copied unless it is all of
    memory no input and no earlier output holds.

    NOTE: two arrays that own their memory share none, so only the inputs with v's
    owner (and those over foreign memory) are compared with v: comparing every output
    with every input cost milliseconds a call in a model's training step.
    """
    if not isinstance(v, np.ndarray):
        key = rb._root_key(v)
        if key in roots or key in inputs[0] or v.storage_offset() or not v.is_contiguous() \
                or v.untyped_storage().nbytes() != v.nbytes:
            v = v.clone()
            key = rb._root_key(v)
        roots.add(key)
        return v
    root = rb._root(v)
    owners, foreign = inputs
    candidates = (owners.get(id(root), ()) if root.base is None
                  else [a for group in owners.values() for a in group])
    if id(root) in roots or not v.flags.writeable or not (
            v.flags.c_contiguous or _dense(v)) or any(
            np.may_share_memory(v, a) for a in (*candidates, *foreign)):
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
            flat = np.array(flat) if isinstance(flat, np.ndarray) else flat
            copy_(target, from_array(flat.reshape(tuple(target.shape)), target.dtype,
                                     st.device))


def _set_grad(t: Tensor, value: np.ndarray) -> None:
    """Make value t's .grad (written into the existing .grad, as backward() does)."""
    if t._grad is None:
        t._grad = from_array(value.reshape(tuple(t.shape)), t.dtype, t._storage.device)
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
    kind, i, whole, view, dtype, detached, spent = spec
    if kind == "out":
        st = fresh.get(i)
        if st is None:
            st = fresh[i] = storage.Storage.from_array(values[i], dtype,
                                                       program.out_devices.get(i, "cpu"), whole)
        out = _new(st, view, dtype, None)
        out._detached = detached
        if spent:
            _spent_record(out, spent)
        elif spent is not None:
            out._requires_grad = True
        return out
    if kind == "capture":
        st = storages[i]
        out = _new(st, view, dtype, None)
        out._detached = detached
        return out
    if kind == "root":
        return roots[i]
    if kind == "rootview":
        return _new(roots[i]._storage, view, dtype, roots[i])
    real = positional[i] if kind == "arg" else positional[i]._grad if kind == "arggrad" \
        else roots[i]._grad
    return real if whole else _alias(program, real, view, dtype, detached)


def _spent_record(t: Tensor, name: str) -> None:
    """Give t a freed record named `name`, as the uncompiled call leaves a result whose
    graph a backward() inside consumed (a backward through it raises, as there)."""
    from .autograd import GradFn
    st = t._storage
    fn = GradFn(name, (), (), None, (), (st, st.version))
    fn.freed = True
    t._grad_fn = fn
    t._requires_grad = True
    t._fn_version = st.version
# -- dynamic dimensions (see tracer/dynamic.py for the design) ----------------------

def _size_positions(sa: tuple, sb: tuple) -> tuple | None:
    """(positions, (s1, s2)): where two signatures differ, when they differ only in
    sizes of tensor dims that all change from one size s1 to one size s2 (both >= 2).

    A position is (argument index, "shape" or "grad", dim).
    """
    if sa[0] != sb[0] or sa[2] != sb[2] or len(sa[1]) != len(sb[1]):
        return None
    positions, pair = [], None
    for i, (x, y) in enumerate(zip(sa[1], sb[1])):
        if x == y:
            continue
        if not (isinstance(x, tuple) and isinstance(y, tuple) and x[:1] == y[:1] == ("T",)) \
                or x[2:5] != y[2:5] or x[6] != y[6] or len(x[1]) != len(y[1]) \
                or (x[5] is None) != (y[5] is None):
            return None
        dims = [((i, "shape", d), p, q) for d, (p, q) in enumerate(zip(x[1], y[1])) if p != q]
        if x[5] is not None:
            if x[5][1] != y[5][1] or len(x[5][0]) != len(y[5][0]):
                return None
            dims += [((i, "grad", d), p, q) for d, (p, q) in enumerate(zip(x[5][0], y[5][0]))
                     if p != q]
        for where, p, q in dims:
            pair = pair or (p, q)
            if (p, q) != pair or min(p, q) < 2:
                return None
            positions.append(where)
    return (tuple(positions), pair) if positions else None


def _with_size(sig: tuple, positions, size: int) -> tuple:
    """sig with every dim at `positions` set to `size`."""
    parts = list(sig[1])
    for i, where, d in positions:
        _, shape, dtype, device, requires_grad, grad, alias = parts[i]
        if where == "shape":
            shape = shape[:d] + (size,) + shape[d + 1:]
        else:
            grad = (grad[0][:d] + (size,) + grad[0][d + 1:], grad[1])
        parts[i] = ("T", shape, dtype, device, requires_grad, grad, alias)
    return sig[0], tuple(parts), sig[2]


def _size_of(sig: tuple, positions) -> int | None:
    """The one size sig has at every dim of `positions` (None: they differ)."""
    sizes = set()
    for i, where, d in positions:
        part = sig[1][i] if i < len(sig[1]) else None
        if not (isinstance(part, tuple) and part[:1] == ("T",)):
            return None
        shape = part[1] if where == "shape" else (part[5] or ((),))[0]
        if d >= len(shape):
            return None
        sizes.add(shape[d])
    return sizes.pop() if len(sizes) == 1 else None


class _Template:
    """Two traces of one function at sizes s1 and s2 of its dynamic dims, from which
    programs for other sizes are made without tracing (see tracer/dynamic.py)."""

    def __init__(self, sig_a: tuple, a: _Program, b: _Program, positions, s1: int, s2: int):
        self.sig_a, self.a, self.b = sig_a, a, b
        self.positions, self.s1, self.s2 = positions, s1, s2
        self.failed: str | None = None   # why the dims are specialised again
        self.sizes: list[int] = []       # the sizes served without tracing
        self._family: SizeFamily | None = None  # one program for every size, once made

    def size_in(self, sig: tuple) -> int | None:
        """The dynamic size of sig when it is this template's signature at that size."""
        size = _size_of(sig, self.positions)
        if size is None or size < 2 or _with_size(sig, self.positions, self.s1) != self.sig_a:
            return None
        return size

    def at(self, size: int) -> _Program:
        """The program at `size`: the traces' graph re-shaped (raises NotDynamic)."""
        program = _resize(self.a, self.b, Fit(self.s1, self.s2, size))
        self.sizes.append(size)
        program.template, program.size = self, size
        return program

    def family(self) -> SizeFamily:
        """The program that serves every size (made on first use; its `why` says
        where none could be made)."""
        if self._family is None:
            self._family = SizeFamily(
                lambda size: _resize(self.a, self.b, Fit(self.s1, self.s2, size)).outputs)
        return self._family

    def describe(self) -> str:
        dims = ", ".join(f"argument {i}{'.grad' if w == 'grad' else ''} dim {d}"
                         for i, w, d in self.positions)
        return f"{dims} (traced at sizes {self.s1} and {self.s2})"


def _same_layout(first: _Program, second: _Program) -> None:
    """Raise NotDynamic unless two programs read, write and return alike."""
    for name in ("writes", "grads", "captures", "roots", "cap_writes", "root_grads",
                 "n_random", "states"):
        if getattr(first, name) != getattr(second, name):
            raise NotDynamic(f"the traces differ in their {name.replace('_', ' ')}")
    if [(k, g) for k, _, g in first.placeholders] != \
            [(k, g) for k, _, g in second.placeholders] or \
            len(first.sources) != len(second.sources):
        raise NotDynamic("the traces read different inputs")


def _zeros_like(buf: rb.Buffer, numel: int) -> rb.Buffer:
    """A placeholder buffer of `numel` zeros of buf's dtype on buf's device."""
    a = buf.array
    dtype = a.dtype if isinstance(a, np.ndarray) else devices.numpy_dtype(a.dtype)
    return rb.Buffer(devices.to_memory(np.zeros(numel, dtype), buf.device), buf.device)


def _resize(first: _Program, second: _Program, fit: Fit) -> _Program:
    """The program first (traced at fit.s1) is at fit.s, given second (traced at fit.s2)."""
    _same_layout(first, second)
    n = len(first.placeholders)
    places = []
    for (k, buf, is_grad), (_, other, _) in zip(first.placeholders, second.placeholders):
        numel = fit.value(buf.size, other.size, f"the size of argument {k}")
        places.append((k, _zeros_like(buf, numel), is_grad))
    where_a = {buf.uid: j for j, buf in enumerate(first.sources)}
    where_b = {buf.uid: j for j, buf in enumerate(second.sources)}

    def buffers(x, y, shape):
        j = where_a.get(x.arg)
        if j is None or where_b.get(y.arg) != j:
            raise NotDynamic("the traces read different tensors")
        if j < n:
            return rb.buffer_node(places[j][1], x.dtype, shape)
        if shape != x.shape:
            raise NotDynamic("a captured tensor's shape depends on the size")
        return x

    outputs = fit.graph(first.outputs, second.outputs, buffers)
    # NOTE: a copy, so every field of the first trace (guards, write-backs, captures)
    # carries over; only what depends on the size or on the compiled entry is new
    program = copy.copy(first)
    program.outputs = outputs
    program.structure = fit.value(first.structure, second.structure, "what the function returns")
    program.placeholders = places
    program.sources = [buf for _, buf, _ in places] + first.sources[n:]
    program.entry = program.inputs = program.params = None
    program.views = {}
    program.nodes = len(toposort(outputs))
    program.resized = True
    return program


class CompiledFunction:
    """A function compiled by `em.compile`: call it like the original."""

    def __init__(self, fn, fullgraph: bool, backend: str, dynamic: bool | None,
                 recompile_limit: int = 8, check: bool | str = False):
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
        self.check = check
        self.checks = 0                  # replays check=True traced again
        self.last_check = None           # check="fp64": the CheckReport of the last call
        self.templates: list[_Template] = []  # dynamic dims: traces re-shaped for new sizes
        self.resized = 0                      # programs made for a new size without tracing
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
                if self.check is True:
                    self._check_trace(found[0], args, kwargs)
                return self._replay(found[0], args, kwargs, found[1])
            if found == _ALSO_PASSED:
                return self.fn(*args, **kwargs)
            reason = found
        elif self._last is not None:
            reason = _describe_guard(self._last, sig)
        if self._last is not None:
            resized = self._resized(sig, args, kwargs)
            if isinstance(resized, tuple):
                return self._replay(*resized)
            reason = resized or reason
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

    def _resized(self, sig, args, kwargs) -> tuple | str | None:
        """(program, args, kwargs, bound) for a signature that differs from traced ones
        only in a dynamic size, made without tracing; where it must be traced, None or
        why its dynamic dims are specialised again."""
        if self.dynamic is False:
            return None
        arg_storages = _arg_storages(args, kwargs)
        why = None
        for template, size in self._templates_for(sig):
            if template.failed is not None or isinstance(template.a.bind(arg_storages), str):
                continue  # NOTE: specialised again, or traced in another state
            try:
                program = template.at(size)
            except NotDynamic as e:
                template.failed = str(e)
                why = why or f"{template.describe()} is specialised again at size {size}: {e}"
                continue
            bound = program.bind(arg_storages)
            if isinstance(bound, str):
                continue
            self.resized += 1
            entries = self.programs.get(sig)
            if isinstance(entries, list):
                entries.insert(0, program)
            else:
                self.programs[sig] = [program]
            return program, args, kwargs, bound
        return why

    def _templates_for(self, sig):
        """(template, size) pairs that may serve sig: known ones, then ones made from two
        traced programs whose signatures differ from each other as sig does from them
        (the second recompile the same dims cause)."""
        for template in self.templates:
            size = template.size_in(sig)
            if size is not None:
                yield template, size
        traced = [(k, p) for k, e in self.programs.items() if isinstance(e, list)
                  for p in e if not p.resized]
        known = {(id(t.a), id(t.b)) for t in self.templates}
        # NOTE: dims specialised again stay so: no other pair of traces is tried for them
        failed = {t.positions for t in self.templates if t.failed is not None}
        for i, (sig_a, first) in enumerate(traced):
            for sig_b, second in traced[i + 1:]:
                found = _size_positions(sig_a, sig_b)
                if found is None or (id(first), id(second)) in known or \
                        found[0] in failed or first.states != second.states:
                    continue
                template = _Template(sig_a, first, second, found[0], *found[1])
                size = template.size_in(sig)
                if size is not None:
                    self.templates.append(template)
                    known.add((id(first), id(second)))
                    yield template, size

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
        program = scalars.trace(functools.partial(_trace, lines=bool(self.check)), self.fn,
                                args, kwargs)
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
        program.bindings = _bindings(self.fn) + _reach_bindings(self.fn, program)
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
        if self.check == "fp64":
            self._check_fp64(program, arrays, values)
        roots_seen: set[int] = set()
        inputs = _by_owner(arrays)
        values = [_owned(v, inputs, roots_seen) for v in values]
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
                                                         t.dtype, t._storage.device)
        tree, specs = program.structure
        fresh: dict = {}
        built = [_leaf(program, spec, positional, storages, roots, values, fresh)
                 for spec in specs]
        for j, i in program.retained:
            t = built[j]
            t._grad = from_array(values[i].reshape(tuple(t.shape)), t.dtype, t._storage.device)
            t._retains_grad = True
        return _unflatten(tree, iter(built))

    def _check_trace(self, program: _Program, args, kwargs) -> None:
        """check=True: on the first replays and a sample after, trace again and raise
        CheckError if the graph differs (before anything is written back)."""
        from .checks import CHECK_EVERY, CHECK_FIRST, retrace_check
        self.checks += 1
        n = self.checks
        if n > CHECK_FIRST and n % CHECK_EVERY:
            return
        # NOTE: the trace runs on placeholders and restores every captured tensor it
        # touched, so only the replay below changes tensors
        # NOTE: float arguments that are runtime parameters are traced at the values the
        # program was traced with (the graph holds those as its constants)
        traced = dict(program.scalar_values)
        n = len(args)
        names = sorted(kwargs)
        args = [traced.get(k, a) for k, a in enumerate(args)]
        kwargs = {name: traced.get(n + i, kwargs[name]) for i, name in enumerate(names)}
        fresh = _trace(self.fn, args, kwargs, lines=True)
        retrace_check(self._name(), program, fresh)

    def _check_fp64(self, program: _Program, arrays, values) -> None:
        """check="fp64": compare this call's results with a float64 evaluation."""
        from .checks import fp64_check
        # NOTE: the call's draws were the last n_random the generator gave
        seed, end = current().generator.position()
        saved = [buf.array for buf in program.sources]
        try:
            for buf, a in zip(program.sources, arrays):
                buf.array = a
            report = fp64_check(self._name(), program, values,
                                (seed, end - program.n_random))
        finally:
            for buf, a in zip(program.sources, saved):
                buf.array = a
        self.last_check = report
        if not report.ok:
            warnings.warn(f"em.compile: {report}", stacklevel=4)

    def stats(self) -> dict:
        """{"traces": traces made (runs of the Python body), "hits": calls that replayed a
        trace, "programs": programs held, "uncompiled": signatures that run uncompiled,
        "resized": programs made for a new size of a dynamic dimension without tracing}."""
        held = [e for e in self.programs.values() if isinstance(e, list)]
        return {"traces": self.traces, "hits": self.hits,
                "programs": sum(len(e) for e in held),
                "uncompiled": len(self.programs) - len(held), "resized": self.resized}

    def clear(self) -> None:
        """Forget every trace (the next call traces again) and reset the counters."""
        self.programs.clear()
        self.templates.clear()
        self.resized = 0
        self._escapes.clear()
        self.reasons.clear()
        self.traces = self.hits = 0
        self._last = None
        self._limited = False

    def explain(self) -> str:
        lines = [f"{self._name()}: {self.traces} trace(s), {self.hits} cached call(s)"]
        if self.resized:
            lines[0] += f", {self.resized} program(s) made for a new size without tracing"
        for sig, entries in self.programs.items():
            if isinstance(entries, str):
                lines.append(f"  {_fmt_signature(sig)}: runs uncompiled: {entries}")
                continue
            for p in entries:
                if p.resized:
                    continue  # NOTE: listed under its dynamic dims below
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
                lines.append(f"    guards: {_fmt_guards(sig, p)}")
        lines += [f"  {_fmt_dynamic(t)}" for t in self.templates]
        for r in self.reasons:
            lines.append(f"  recompiled because {r}")
        if self._limited:
            lines.append(f"  reached the recompile limit ({self.recompile_limit}): runs "
                         "uncompiled where no traced program fits")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<compiled {self._name()}>"


def _fmt_guards(sig: tuple, p: _Program) -> str:
    """What must hold for a call to replay p (for `em.explain`)."""
    parts = [f"arguments {_fmt_signature(sig)}" + (f" with keywords {list(sig[0])}"
                                                     if sig[0] else ""),
             f"grad mode {'on' if sig[2] else 'off'}"]
    if p.captures:
        parts.append("each captured tensor alive, with its requires_grad and .grad")
    parts += [f"{name!r} still bound to its tensor" for name, _, _ in p.bindings]
    parts += [f"{label}: {_fmt_state(value)}" for _, _, value, label in p.states]
    return "; ".join(parts)


def _fmt_state(value) -> str:
    if isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return ", ".join(f"{k}={v}" for k, v in value)
    return repr(value)


def _fmt_dynamic(t: _Template) -> str:
    """A dynamic dimension's line in `em.explain`."""
    text = f"dynamic: {t.describe()}, any size >= 2"
    if t.failed is not None:
        return f"{text} until it was specialised again: {t.failed}"
    if t.sizes:
        text += f"; served without tracing at sizes {', '.join(map(str, t.sizes))}"
    family = t._family
    if family is not None:
        text += ("; one program serves every size" if family.why is None else
                 f"; each size compiles its own program: {family.why}")
    return text


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


_REACH_DEPTH = 4      # attribute / item steps followed from a closure cell or global
_REACH_OBJECTS = 2000  # objects visited at most, per trace
_REACH_ITEMS = 256     # items or attributes looked at per object
_MISSING = object()
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
           types.MethodType, str, bytes, int, float, complex, bool, np.ndarray, Tensor)


def _reach_bindings(fn, program: _Program) -> list:
    """How fn reaches each captured tensor through attributes and containers (`S.w`,
    `self.layers[0].weight`), to guard that the path still leads to that tensor.

    NOTE: a captured tensor is known by its storage: rebinding `model.w = new` while
    the old tensor lives on elsewhere would otherwise replay over the old one.
    Breadth first from the closure cells, the globals fn names and a bound method's
    `self`, at most `_REACH_DEPTH` steps; tensors named directly are `_bindings`'.
    """
    targets = {id(t) for ref, *_ in program.roots if (t := ref()) is not None}
    # NOTE: a view of a captured tensor (S.w = base.reshape(...)) is known by its storage
    stores = {id(t._storage) for ref, *_ in program.roots if (t := ref()) is not None}
    stores |= {id(st) for kind, x in program.captures if kind == "storage" and
               (st := x()) is not None}
    if not targets and not stores:
        return []
    func = getattr(fn, "__func__", fn)
    code = getattr(func, "__code__", None)
    starts = []
    if getattr(fn, "__self__", None) is not None:
        starts.append(("self", functools.partial(getattr, fn, "__self__")))
    for name, cell in zip(getattr(code, "co_freevars", ()), getattr(func, "__closure__", None)
                          or ()):
        starts.append((name, functools.partial(_cell_value, cell)))
    scope = getattr(func, "__globals__", {})
    for name in getattr(code, "co_names", ()):
        if name in scope:
            starts.append((name, functools.partial(scope.get, name, _MISSING)))
    out, seen, found = [], set(), set()
    queue = [(name, read, read(), ()) for name, read in starts]
    while queue and len(seen) < _REACH_OBJECTS:
        name, read, obj, steps = queue.pop(0)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for key, child in _children(obj):
            path = steps + (key,)
            if isinstance(child, Tensor):
                if (id(child) in targets or id(child._storage) in stores) and \
                        id(child) not in found:
                    found.add(id(child))
                    ref = weakref.ref(child)
                    out.append((name + "".join(_fmt_step(k) for k in path),
                                functools.partial(_follow, read, path, ref), ref))
            elif len(path) < _REACH_DEPTH and not isinstance(child, _OPAQUE):
                queue.append((name, read, child, path))
    return out


def _cell_value(cell):
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return _MISSING


def _children(obj) -> list:
    """(step, value) of obj's items or instance attributes; none for other objects."""
    if isinstance(obj, (list, tuple)):
        return [((True, i), v) for i, v in enumerate(obj[:_REACH_ITEMS])]
    if isinstance(obj, dict):
        return [((True, k), v) for k, v in list(obj.items())[:_REACH_ITEMS]]
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict) and not isinstance(obj, _OPAQUE):
        return [((False, k), v) for k, v in list(attrs.items())[:_REACH_ITEMS]]
    return []


def _fmt_step(step) -> str:
    is_item, key = step
    return f"[{key!r}]" if is_item else f".{key}"


def _follow(read, path, ref):
    """The object `path` leads to from read() now (_MISSING where it no longer does).

    NOTE: None once the tensor found there died: the captures' own guard then says
    it was freed, which retires the program."""
    if ref() is None:
        return None
    obj = read()
    for is_item, key in path:
        try:
            obj = obj[key] if is_item else vars(obj)[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return obj


def _arg_storages(args, kwargs) -> set[int]:
    """ids of the argument tensors' storages (a captured tensor must be none of them)."""
    out = {id(a._storage) for a in args if isinstance(a, Tensor)}
    if kwargs:
        out |= {id(a._storage) for a in kwargs.values() if isinstance(a, Tensor)}
    return out


def compile(fn=None, *, fullgraph: bool = False, backend: str = "auto",
            dynamic: bool | None = None, recompile_limit: int = 8, check: bool | str = False):
    """Compile `fn` (also usable as `@em.compile` or `@em.compile(fullgraph=True)`).

    Each signature is traced once and replayed afterwards; the module's docstring
    has the details of guards and write-backs.

    What is guarded: each tensor argument's shape (but a dynamic dimension's
    size, see `dynamic`), dtype, device, requires_grad and `.grad`; other
    arguments by value; grad mode; the captured tensors' state; and Python-side
    state the trace read: the `training` flags of every `em.nn.Module` the
    function receives, names or calls, so a trace made in train mode is not
    replayed after `model.eval()`.

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
        dynamic (bool or None): None (default) or True: a dimension traced at two
            sizes is dynamic, and every other size >= 2 of it is served by the traced
            graph re-shaped for it, without running `fn` again (tracer/dynamic.py
            has the design), and by one generated program for every size (the
            NumPy back end; runtime/symbolic.py); where the graph depends on the
            size in another way (a
            reshape that splits the dimension) it is specialised again and
            `em.explain` says why. False: every shape is traced.
        recompile_limit (int): the most traces per function; past it, the function
            runs uncompiled wherever no traced program fits, with one warning naming
            the guard that failed.
        check (bool or str): ``True`` traces the function again (on placeholders,
            restoring every tensor it touches) on the first 3 calls that replay a
            program and on every 64th after, and raises `em.CheckError` before the
            call changes anything if it would now build another graph than the one
            replayed (a guard is missing: the function branches on Python state the
            trace could not see), naming the first differing node and the line that
            built it. Python side effects of the body (a counter it increments) happen
            once more on those calls. ``"fp64"`` evaluates each call's graph again with
            the reference interpreter in float64 and stores an `em.CheckReport` in the
            compiled function's ``last_check``: per output, the normwise error of the
            compiled and of the uncompiled result against float64, and a budget of a
            few ulps of the dtype (4 for float16 and bfloat16, 64 for float32) plus
            ``4 * sqrt(K)`` ulps of the accumulator for a reduction of length K. A
            compiled error over budget warns, naming the first fused kernel where the
            error appears and the line of the function that built it. Both are for
            debugging: they cost a trace or an interpreted run per checked call.

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
    >>> g = em.compile(lambda x: x.mean(0))
    >>> for n in range(2, 14):  # 12 batch sizes: the Python body runs twice
    ...     _ = g(em.ones(n, 3))
    >>> g.stats()["traces"], g.stats()["resized"]
    (2, 10)
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
    if check not in (False, True, "fp64") or (check and not isinstance(check, (bool, str))):
        raise ValueError(f"check must be False, True or 'fp64', got {check!r}")
    if fn is None:
        return lambda f: CompiledFunction(f, fullgraph, backend, dynamic, recompile_limit,
                                          check)
    return CompiledFunction(fn, fullgraph, backend, dynamic, recompile_limit, check)


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
                                                                          None)
    sig = None
    if args or kwargs:
        sig = _signature(args, kwargs)
        entries = target.programs.get(sig)
        if not entries:
            reason = None if target._last is None else _describe_guard(target._last, sig)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # NOTE: as a call would: a dynamic size is served without tracing
                resized = None if target._last is None else target._resized(sig, args, kwargs)
                if not isinstance(resized, tuple):
                    target._retrace(sig, resized or reason, args, kwargs)
    if not graph:
        return target.explain()
    entries = target.programs.get(sig if sig is not None else target._last)
    if not entries or isinstance(entries, str):
        return None
    return _fused_graph(entries[-1].outputs, target.backend)


def _fused_graph(outputs, backend: str = "auto"):
    """The simplified graph of `outputs` as a networkx DiGraph, each vertex marked with
    the kernel the schedule puts it in (see `explain`)."""
    key, _, _ = canonical(outputs)
    plan = lower(Graph(key), fold=_fold, backend=fusion_backend(backend))
    out = plan.graph.to_networkx()
    where = {id(n): f"k{g.id}" for g in plan.steps for n in g.nodes}
    for i, n in enumerate(plan.graph.nodes):
        out.nodes[i]["kernel"] = where.get(id(n))
    return out
