"""`em.compile`: trace a function once per signature, then replay its graph.

The first call with a new signature runs the function on placeholder tensors
(same shapes, dtypes, requires_grad and `.grad` as the arguments) and records
what it computes: its return values, the new values of arguments it modified in
place, and the `.grad` of arguments that a `backward()` inside wrote. Later calls
whose guards match skip Python entirely: they look up the cached program, run it
on the arguments' buffers and write the results back, so an optimiser step
(forward, backward and update) can be compiled as one.

Guards: each tensor argument's shape, dtype, device, requires_grad and whether
it has a `.grad`; other arguments by value; grad mode. A mismatch traces again;
`em.explain(fn, *args)` says why.

What needs a value while tracing (`.item()`, `bool(t)`, `.numpy()`, `print`) is a
graph break: the function then runs as ordinary lazy code for that signature,
with one warning naming the line (`fullgraph=True` raises instead). So does a
result that still needs autograd after the call (a returned tensor that requires
grad when no backward ran inside). Tensors the function reads from its enclosing
scope are constants of the trace, as in JAX: pass tensors that change as arguments.
"""

from __future__ import annotations

import functools
import os
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..ir import build as b
from ..ir.graph import toposort
from ..ir.ops import Op
from ..runtime import buffers as rb
from ..runtime.config import options
from ..runtime.execute import run
from . import mode, storage
from .creation import _rng
from .tensor import Tensor, from_array

__all__ = ["compile", "explain", "GraphBreak"]


class GraphBreak(RuntimeError):
    """A traced function needed a concrete value (raised with `fullgraph=True`)."""


@dataclass
class _Trace:
    """What a trace found: placeholders, outputs, and how to write them back."""

    uids: set = field(default_factory=set)       # placeholder buffer uids
    broke: str | None = None


def depends_on_placeholders(nodes) -> bool:
    trace = storage.tracing[0]
    if trace is None:
        return False
    uids = trace.uids
    return any(n.op is Op.BUFFER and n.arg in uids for n in toposort(nodes))


_PACKAGE_DIRS = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), d) + os.sep for d in ("tracer", "ir", "runtime", "codegen", "ember"))


def _user_line() -> str:
    """The innermost line of user code on the stack (where the value was needed)."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIRS):
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "<unknown line>"


def graph_break() -> None:
    """Called when a traced function needs a value: abort the trace."""
    line = _user_line()
    storage.tracing[0].broke = line
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
        else:
            try:
                hash(a)
            except TypeError:
                a = ("id", id(a))
            parts.append(a)
    return tuple(sorted(kwargs)), tuple(parts), mode.is_grad_enabled()


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


def _describe_guard(old: tuple, new: tuple) -> str:
    if old[0] != new[0]:
        return f"keyword arguments changed: {old[0]} -> {new[0]}"
    if old[2] != new[2]:
        return f"grad mode changed: {old[2]} -> {new[2]}"
    for i, (a, c) in enumerate(zip(old[1], new[1])):
        if a != c:
            return f"argument {i} changed: {_fmt_part(a)} -> {_fmt_part(c)}"
    return "the number of arguments changed"


# -- one traced program ---------------------------------------------------------

class _Program:
    """A traced signature: output nodes, placeholders and write-backs."""

    def __init__(self, outputs, structure, placeholders, writes, grads, seq0, n_random):
        self.outputs = outputs            # nodes: returned tensors, writes, grads
        self.structure = structure        # (treedef, [("tensor", i, dtype, shape) | value])
        self.placeholders = placeholders  # [(argument index, Buffer, is_grad)]
        self.writes = writes              # [(argument index, output index)]
        self.grads = grads                # [(argument index, output index)]
        self.seq0 = seq0                  # the first random sequence number of the trace
        self.n_random = n_random          # random ops the function draws per call
        self.entry = None                 # the cached compiled program, once looked up
        self.inputs = None                # program input i <- ("arg", k) or ("const", array)
        self.params = None                # RAND parameters (seed, sequence) at trace time
        self.nodes = len(toposort(outputs))

    def _prepare(self) -> None:
        """Find the compiled program once, and where each of its inputs comes from."""
        from ..runtime.compiled import lookup
        entry, inputs, params = lookup(self.outputs)
        by_array = {id(buf.array): k for k, (_, buf, _) in enumerate(self.placeholders)}
        self.inputs = [("arg", by_array[id(a)]) if id(a) in by_array else ("const", a)
                       for a in inputs]
        self.params = params
        self.entry = entry

    def values(self, arrays: list[np.ndarray], backend: str) -> list[np.ndarray] | None:
        """The outputs for these argument arrays; None where only the function can tell."""
        use_compiled = "interpreter" not in (options.backend, backend)
        if not use_compiled and self.n_random:
            return None  # the interpreter cannot redraw: run the function itself
        seq0 = _rng["next"]
        _rng["next"] += self.n_random
        if use_compiled and self.entry is None:
            self._prepare()
        if use_compiled and self.entry.fn is not None:
            inputs = [arrays[k] if kind == "arg" else k for kind, k in self.inputs]
            params = [(_rng["seed"], seq0 + seq - self.seq0) for _, seq in self.params]
            with np.errstate(all="ignore"):
                return self.entry.fn(inputs, params)
        saved = [buf.array for _, buf, _ in self.placeholders]
        try:
            for (_, buf, _), a in zip(self.placeholders, arrays):
                buf.array = a
            return run(self.outputs)
        finally:
            for (_, buf, _), a in zip(self.placeholders, saved):
                buf.array = a


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
    trace.uids.add(p._storage.buffer.uid)
    return p, p._storage.buffer


def _arg_array(t: Tensor) -> np.ndarray:
    st = t._storage
    if t._view.is_full(st.numel):
        return st.array()
    return np.ascontiguousarray(t._array()).reshape(-1)


def _trace(fn, args, kwargs) -> _Program | str:
    """Run fn on placeholders; a _Program, or the reason it cannot be replayed."""
    trace = _Trace()
    placeholders, proxies = [], []
    positional = list(args) + [kwargs[k] for k in sorted(kwargs)]
    tensors = [a for a in positional if isinstance(a, Tensor)]
    if len({id(a._storage) for a in tensors}) != len(tensors):
        return "two tensor arguments share memory (views of one tensor)"
    for k, a in enumerate(positional):
        if not isinstance(a, Tensor):
            proxies.append(a)
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
    n_args = len(args)
    call_args = proxies[:n_args]
    call_kwargs = dict(zip(sorted(kwargs), proxies[n_args:]))
    before = {k: (p._storage.node, p._grad, None if p._grad is None else p._grad._storage.node)
              for k, p in enumerate(proxies) if isinstance(p, Tensor)}
    seq0 = _rng["next"]
    storage.tracing[0] = trace
    prev_eager, options.eager = options.eager, False
    backward_ran = mode.backward_passes[0]
    try:
        result = fn(*call_args, **call_kwargs)
    except GraphBreak:
        _rng["next"] = seq0  # the function runs again, drawing the same numbers
        return f"graph break at {trace.broke}"
    finally:
        storage.tracing[0] = None
        options.eager = prev_eager
    n_random = _rng["next"] - seq0
    _rng["next"] = seq0  # the replay that follows draws them
    consumed = mode.backward_passes[0] != backward_ran
    leaves: list[Tensor] = []
    tree = _flatten(result, leaves)
    if mode.is_grad_enabled() and not consumed and any(t._requires_grad for t in leaves):
        return "a returned tensor requires grad and no backward() ran inside the function"
    outputs = [t.node for t in leaves]
    writes, grads = [], []
    for k, (node_before, grad_before, grad_node_before) in before.items():
        p = proxies[k]
        if p._storage.node is not node_before:
            writes.append((k, len(outputs)))
            outputs.append(b.reshape(p._storage.node, (p._storage.numel,)))
        if p._grad is not grad_before or (p._grad is not None and
                                          p._grad._storage.node is not grad_node_before):
            if p._grad is None:
                return "a .grad was set to None inside the function"
            grads.append((k, len(outputs)))
            outputs.append(b.cast(p._grad.node, p.dtype))
    specs = [(t.dtype, tuple(t.shape)) for t in leaves]
    return _Program(outputs, (tree, specs), placeholders, writes, grads, seq0, n_random)


def _dense(v: np.ndarray) -> bool:
    """Whether v's elements fill one block of memory (in some order of its dims)."""
    expected = v.itemsize
    for stride, size in sorted(zip(v.strides, v.shape)):
        if size != 1:
            if stride != expected:
                return False
            expected *= size
    return True


def _owned(v: np.ndarray, arrays: list[np.ndarray]) -> np.ndarray:
    """v, or a copy where it is not memory a new tensor may own.

    A compiled program's outputs are fresh arrays; a copy is needed only for an output
    that is an input (or a view of one), or a read-only or broadcast view (the
    interpreter returns those for constants and movement ops). A fresh result laid
    out as a transposed input is (`x.T * 2`) is kept as it is, as a lazy one is.
    """
    if not v.flags.writeable or not (v.flags.c_contiguous or _dense(v)) or any(
            np.may_share_memory(v, a) for a in arrays):
        return np.array(v)
    return v


def _write_back(target: Tensor, value: np.ndarray) -> None:
    st = target._storage
    flat = value.reshape(-1)
    if target._view.is_full(st.numel):
        st.assign(flat)
    else:
        from .inplace import copy_
        with mode.no_grad():
            copy_(target, from_array(np.array(flat).reshape(tuple(target.shape)), target.dtype))


class CompiledFunction:
    """A function compiled by `em.compile`: call it like the original."""

    def __init__(self, fn, fullgraph: bool, backend: str, dynamic: bool):
        self.fn = fn
        self.fullgraph = fullgraph
        self.backend = backend
        self.dynamic = dynamic
        self.programs: dict[tuple, _Program | str] = {}
        self.traces = 0
        self.hits = 0
        self.reasons: list[str] = []
        self._last: tuple | None = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        if options.eager:
            return self.fn(*args, **kwargs)
        sig = _signature(args, kwargs)
        program = self.programs.get(sig)
        if program is None:
            if self._last is not None:
                self.reasons.append(_describe_guard(self._last, sig))
            self._last = sig
            self.traces += 1
            program = _trace(self.fn, args, kwargs)
            if isinstance(program, str):
                if self.fullgraph:
                    raise GraphBreak(f"{getattr(self.fn, '__name__', 'function')}: "
                                     f"{program} (fullgraph=True)")
                warnings.warn(f"em.compile: {getattr(self.fn, '__name__', 'function')} runs "
                              f"uncompiled for this signature: {program}", stacklevel=2)
            self.programs[sig] = program
        else:
            self.hits += 1
        if isinstance(program, str):
            return self.fn(*args, **kwargs)
        return self._replay(program, args, kwargs)

    def _replay(self, program: _Program, args, kwargs):
        positional = list(args) + [kwargs[k] for k in sorted(kwargs)]
        for k, _ in program.writes:
            positional[k]._storage.check_writable()  # before anything runs or changes
        arrays = [_arg_array(positional[k]._grad if is_grad else positional[k])
                  for k, _, is_grad in program.placeholders]
        values = program.values(arrays, self.backend)
        if values is None:
            return self.fn(*args, **kwargs)
        values = [_owned(v, arrays) for v in values]
        for k, i in program.writes:
            _write_back(positional[k], values[i])
        for k, i in program.grads:
            t = positional[k]
            if t._grad is None:
                t._grad = from_array(values[i].reshape(tuple(t.shape)), t.dtype)
            else:
                _write_back(t._grad, values[i])
        tree, specs = program.structure
        leaves = iter([from_array(values[i].reshape(shape), dtype)
                       for i, (dtype, shape) in enumerate(specs)])
        return _unflatten(tree, leaves)

    def explain(self) -> str:
        lines = [f"{getattr(self.fn, '__name__', 'function')}: {self.traces} trace(s), "
                 f"{self.hits} cached call(s)"]
        for sig, p in self.programs.items():
            if isinstance(p, str):
                lines.append(f"  {_fmt_signature(sig)}: runs uncompiled: {p}")
            else:
                if p.entry is None and not options.eager:
                    p._prepare()
                kernels = getattr(p.entry, "kernels", -1)
                lines.append(f"  {_fmt_signature(sig)}: one graph of {p.nodes} nodes, "
                             f"{kernels} kernel(s); writes back {len(p.writes)} argument(s) "
                             f"and {len(p.grads)} .grad(s)")
        for r in self.reasons:
            lines.append(f"  recompiled because {r}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<compiled {getattr(self.fn, '__name__', 'function')}>"


def compile(fn=None, *, fullgraph: bool = False, backend: str = "auto",
            dynamic: bool = False):
    """Compile `fn` (also usable as `@em.compile` or `@em.compile(fullgraph=True)`).

    Each signature is traced once and replayed afterwards (see the module's
    docstring for the guards, graph breaks and write-backs). Shapes are always
    specialised: `dynamic=True` is accepted for PyTorch compatibility and traces
    each new shape like `dynamic=False` does. `backend` picks the back end
    ("auto": the compiled NumPy path on the CPU).

    >>> import ember as em
    >>> @em.compile
    ... def f(x):
    ...     return (x * 2 + 1).exp().sum()
    >>> f(em.ones(3)).item() == f(em.ones(3)).item()
    True
    """
    if backend not in ("auto", "numpy", "triton", "interpreter"):
        raise ValueError(f"unknown backend {backend!r}; expected 'auto', 'numpy' or 'triton'")
    if backend == "triton":
        from .device import cuda_available
        if not cuda_available():
            raise RuntimeError("backend='triton' needs a CUDA device; none is available")
    if fn is None:
        return lambda f: CompiledFunction(f, fullgraph, backend, dynamic)
    return CompiledFunction(fn, fullgraph, backend, dynamic)


def explain(fn, *args, **kwargs) -> str:
    """How `fn` compiles for these arguments: graph breaks, graph size, kernels, recompiles."""
    target = fn if isinstance(fn, CompiledFunction) else CompiledFunction(fn, False, "auto",
                                                                          False)
    if args or kwargs:
        sig = _signature(args, kwargs)
        if sig not in target.programs:
            if target._last is not None:
                target.reasons.append(_describe_guard(target._last, sig))
            target._last = sig
            target.traces += 1
            target.programs[sig] = _trace(target.fn, args, kwargs)
    return target.explain()
