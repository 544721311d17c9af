"""Autograd's records: what each operation on tensors that require grad leaves behind.

Each operation records a `GradFn`: the operation's output node expressed over its
input nodes, plus edges to the inputs' own records (another GradFn, an
`AccumulateGrad` for a leaf, or None). `result` wraps an operation's node as a
tensor and records it; the engine (tracer/engine.py) walks the records backward.
This module also binds `Tensor.grad_fn`, the record a tensor reports.
"""

from __future__ import annotations

import weakref

from ..ir import build as b
from ..ir.node import Node
from ..runtime.context import current
from . import mode
from .tensor import Tensor, wrap_node

__all__ = ["AccumulateGrad", "GradFn", "base_flat", "common_device", "current_grad_fn", "edge",
           "is_stale", "record", "record_order", "result"]


class AccumulateGrad:
    """The edge into a leaf: gradients arriving here accumulate into `.grad`."""

    __slots__ = ("__weakref__", "_leaf")

    def __init__(self, leaf: Tensor):
        self._leaf = weakref.ref(leaf)

    @property
    def variable(self) -> Tensor | None:
        return self._leaf()

    def name(self) -> str:
        return "torch::autograd::AccumulateGrad"

    @property
    def next_functions(self) -> tuple:
        return ()

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {id(self):#x}>"


class GradFn:
    """The record of one operation: `out` as a function of `in_nodes`."""

    __slots__ = ("__weakref__", "_name", "dense", "edges", "freed", "in_nodes", "out",
                 "out_saved", "retained", "rule", "saved", "scalars", "stops")

    def __init__(self, name, edges, in_nodes, out, saved, out_saved):
        self._name = name
        self.edges = edges
        self.in_nodes = in_nodes
        self.out = out
        self.saved = saved          # (storage, version, tensor description) per input
        self.out_saved = out_saved  # (storage, version) of the output
        self.retained = None        # weakref to a tensor that retains its grad
        self.freed = False
        self.scalars = ()           # operand positions held by Python numbers (no edge)
        self.stops = ()             # nodes of `out` the gradient does not flow through
        self.rule = None            # (name in autodiff.RULES, *args): a formula, not the walk
        self.dense = False          # every input gets a cotangent, zeros where none flows

    def name(self) -> str:
        return self._name

    @property
    def next_functions(self) -> tuple:
        out = [(e, 0) for e in self.edges]
        for i in self.scalars:  # PyTorch lists a number operand as (None, 0)
            out.insert(i, (None, 0))
        return tuple(out)

    def __repr__(self) -> str:
        return f"<{self._name} object at {id(self):#x}>"

    def __call__(self, *args, **kwargs):
        raise RuntimeError("call .backward() on a tensor instead of calling a grad_fn")


def edge(t: Tensor):
    """The autograd edge into tensor t: its GradFn, its AccumulateGrad, or None."""
    if not t._requires_grad:
        return None
    fn = current_grad_fn(t) if t._base is not None else t._grad_fn
    if fn is not None:
        return fn
    if not t._rg:
        # NOTE: a view that requires grad only through its base but has no record (made
        # under no_grad, or before the base required grad) is no leaf: as in PyTorch,
        # no gradient flows through it.
        return None
    if t._accum is None:
        t._accum = AccumulateGrad(t)
    return t._accum


def _describe(t: Tensor) -> tuple:
    """What an error names a saved tensor by: (dtype, shape), formatted only then."""
    return t.dtype, t._view.shape


def _describe_text(desc) -> str:
    dtype, shape = desc
    return f"[ember.{dtype.name.capitalize()}Tensor [{', '.join(map(str, shape))}]]"


def record(out: Tensor, name: str, inputs: tuple, in_nodes: tuple | None = None,
           scalars: tuple = (), stops: tuple = ()) -> None:
    """Give `out` a GradFn named `name` over `inputs` (Tensors).

    `scalars`: the operand positions that held Python numbers (for next_functions);
    `stops`: nodes computed from the inputs that the gradient treats as constants
    (a softmax's row maximum: its gradient cancels exactly, and PyTorch's formula
    leaves it out).
    """
    if in_nodes is None:
        in_nodes = tuple([x.node for x in inputs])
    edges = tuple([edge(x) for x in inputs])
    saved = tuple([(x._storage, x._storage.version, (x.dtype, x._view.shape)) for x in inputs])
    # NOTE: `_node` is the computation over in_nodes; `out.node` would be a BUFFER
    # when eager mode has already realised out.
    out_node = out._node if out._node is not None else out.node
    storage = out._storage
    fn = GradFn(name, edges, in_nodes, out_node, saved, (storage, storage.version))
    fn.scalars = scalars
    fn.stops = stops
    storage.record = weakref.ref(fn)  # see storage._saved_pending
    if out._grad_fn is None and not out._retains_grad:  # a fresh result: the common case
        out._grad_fn = fn
        out._requires_grad = True
        out._fn_version = storage.version
    else:
        _set_grad_fn(out, fn)


def _set_grad_fn(t: Tensor, fn: GradFn) -> None:
    """Make fn t's record; a retained grad follows t to it (after an in-place op)."""
    old = t._grad_fn
    if t._retains_grad:
        if old is not None and old.retained is not None and old.retained() is t:
            old.retained = None
        fn.retained = weakref.ref(t)
    t._grad_fn = fn
    t._requires_grad = True
    t._fn_version = t._storage.version


def base_flat(base: Tensor, base_node):
    """The base's whole storage as a flat node, expressed over `base_node`."""
    if base._view.is_full(base._storage.numel):
        return b.flat(base_node)
    return b.write(b.zeros(base.dtype, (base._storage.numel,)), base_node, base._view)


def current_grad_fn(t: Tensor):
    """t's GradFn, rebuilt for a view whose storage was written through another alias
    (for a view of a detached tensor, from that tensor: `Tensor.history_base`)."""
    fn = t._grad_fn
    base = t.history_base()
    if (base is not None and base._requires_grad and t._fn_version != t._storage.version
            and mode.is_grad_enabled()):
        base_node = base.node
        out = b.as_strided(base_flat(base, base_node), t._view)
        fn = GradFn("AsStridedBackward0", (edge(base),), (base_node,), out,
                    ((base._storage, base._storage.version, _describe(base)),),
                    (t._storage, t._storage.version))
        _set_grad_fn(t, fn)
    return fn


def record_order(roots) -> list[GradFn]:
    """GradFns reachable from roots, each before the GradFns it feeds into (the
    reverse of a depth-first post-order over their edges)."""
    order: list[GradFn] = []
    seen: set[int] = set()
    for root in roots:
        if type(root) is not GradFn or id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root.edges))]
        while stack:
            fn, edges = stack[-1]
            for e in edges:
                if type(e) is GradFn and id(e) not in seen:
                    seen.add(id(e))
                    stack.append((e, iter(e.edges)))
                    break
            else:
                stack.pop()
                order.append(fn)
    order.reverse()
    return order


def is_stale(fn: GradFn) -> bool:
    """Whether an input or the output of fn was written in place since it was recorded."""
    storage, version = fn.out_saved
    if version is not None and storage.version != version:
        return True
    for s, v, _ in fn.saved:
        if v is not None and s.version != v:
            return True
    return False


def common_device(tensors) -> str:
    """The device an operation on `tensors` runs on: theirs, which must be one, except
    that a 0-d CPU tensor may join tensors of another device, as in torch (a scalar)."""
    if not tensors:
        return "cpu"
    first = tensors[0]._storage.device
    if len(tensors) == 1 or all(t._storage.device == first for t in tensors):
        return first
    found = {t._storage.device for t in tensors}
    if len(found - {"cpu"}) == 1 and all(t.ndim == 0 for t in tensors
                                         if t._storage.device == "cpu"):
        return (found - {"cpu"}).pop()
    devices = [t._storage.device for t in tensors]
    other = next(d for d in devices if d != first)
    raise RuntimeError("Expected all tensors to be on the same device, but found at least "
                       f"two devices, {first} and {other}!")


def result(n: Node, inputs: tuple, name: str, in_nodes: tuple | None = None,
           device: str | None = None, scalars: tuple = (),
           order: tuple[int, ...] | None = None, stops: tuple = ()) -> Tensor:
    """Wrap node `n` as the result of an operation on `inputs` named `name`.

    Records a GradFn when gradients are being recorded, `n` is floating point and
    some input requires grad. `in_nodes` are the inputs' nodes as the operation
    read them (default: their current nodes); `scalars` the operand positions that
    held Python numbers; `order` the result's memory layout (see `wrap_node`);
    `stops` nodes the gradient treats as constants (see autograd.record).
    """
    if device is None:
        device = common_device(inputs)
    t = wrap_node(n, device, order)
    if current().grad_enabled and n.dtype.category == 2:
        for x in inputs:
            if x._requires_grad:
                record(t, name, inputs, in_nodes, scalars, stops)
                break
    return t


Tensor.grad_fn = property(current_grad_fn, doc="""The record of the operation that made
this tensor (None for a leaf or a tensor that does not require grad).""")
