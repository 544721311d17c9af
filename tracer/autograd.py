"""Autograd's front end: `backward`, `em.autograd.grad`, `em.grad`, `value_and_grad`.

Operations record `GradFn`s (tracer/records.py); `backward` replays the plan a
training step's structure left last time (tracer/plans.py) or runs the engine
(tracer/engine.py) over the records, and writes the leaves' `.grad`.
"""

from __future__ import annotations

import weakref

from ..ir import build as b
from ..ir.node import Node, node
from ..ir.ops import Op
from ..runtime.buffers import lend
from ..runtime.context import current
from . import function as hooks
from . import mode, plans
from .engine import (
    _engine,
    _forward_values,
    _need_grad,
    _root_cotangent,
    grad_total,
    set_grads,
)
from .records import AccumulateGrad, GradFn, current_grad_fn, edge, record, result
from .storage import realize_storages
from .tensor import Tensor, copy_of, wrap_node

__all__ = ["AccumulateGrad", "GradFn", "backward", "current_grad_fn", "grad", "grad_of",
           "record", "value_and_grad"]


def backward(t: Tensor, gradient=None, retain_graph=None, create_graph: bool = False,
             inputs=None) -> None:
    """Accumulate d(t)/d(leaf) into every leaf's `.grad` (PyTorch's `Tensor.backward`)."""
    _need_grad(t)
    with lend(_forward_values([t._grad_fn])):
        _backward(t, gradient, retain_graph, create_graph, inputs)


def _backward(t: Tensor, gradient, retain_graph, create_graph: bool, inputs) -> None:
    if retain_graph is None:
        retain_graph = create_graph
    # a plain pass replays the plan its structure left last time (tracer/plans.py)
    probe = plans.probe(t) if gradient is None and not create_graph and inputs is None \
        else None
    trace = current().trace
    if trace is not None:
        trace.backward_ran = True  # em.compile: the trace's graph was consumed
    if probe is not None and probe.replay(retain_graph):
        return
    root_cot = _root_cotangent(t, gradient)
    root = edge(t)
    # NOTE: gradients realised at once are read as nodes; tensors only where they stay lazy
    as_nodes = not create_graph and trace is None
    cots, retained = _engine([root], [root_cot], create_graph, retain_graph, as_nodes)
    leaves = [(e.variable, hooks.apply_hooks(e, g, create_graph) if hooks.has_hooks(e) else g)
              for e, g in cots.values()
              if isinstance(e, AccumulateGrad) and e.variable is not None]
    if inputs is not None:
        keep = {id(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])}
        leaves = [(x, g) for x, g in leaves if id(x) in keep]
    if probe is not None and not retained and probe.learn(leaves):
        return
    _write_grads(leaves + retained, create_graph)


def _write_grads(pairs, create_graph: bool) -> None:
    """Add each cotangent into its tensor's .grad, realising all in one graph.

    As in PyTorch, an existing `.grad` is updated in place (same tensor object).
    """
    if create_graph:
        for x, g in pairs:
            x._grad = g if x._grad is None else x._grad + g
        return
    if (trace := current().trace) is not None:  # em.compile is tracing: stay lazy
        for x, g in pairs:
            trace.touch(x)  # NOTE: so the trace puts back a captured leaf's .grad
            gnode = b.cast(g.node, x.dtype)
            if x._grad is None:
                x._grad = wrap_node(gnode, x._storage.device)
            else:
                old = x._grad
                old._storage.write(b.write(old._storage.node, b.binary(
                    Op.ADD, b.cast(old.node, x.dtype), gnode), old._view))
        return
    nodes = [grad_total(x, g if isinstance(g, Node) else g.node) for x, g in pairs]
    # the leaves' pending in-place updates are realised in the same graph
    pending = [x._storage for x, _ in pairs if not x._storage.is_realized]
    values = realize_storages(pending, extra=tuple(nodes),
                              device=pairs[0][0]._storage.device if pairs else None)
    set_grads([x for x, _ in pairs], values)


def grad_of(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
            allow_unused=False):
    """`torch.autograd.grad`: gradients of outputs w.r.t. inputs, without touching .grad."""
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    for o in outputs:
        _need_grad(o)
    for x in inputs:
        if not x._requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    roots = [edge(o) for o in outputs]
    with lend(_forward_values(roots)):
        return _grad_of(outputs, inputs, single, grad_outputs, retain_graph, create_graph,
                        allow_unused, roots)


def _grad_of(outputs, inputs, single, grad_outputs, retain_graph, create_graph, allow_unused,
             roots):
    cots_in = [_root_cotangent(o, g) for o, g in zip(outputs, grad_outputs)]
    # Non-leaf inputs get their cotangent through a retain hook on their GradFn.
    marks = []
    for x in inputs:
        fn = current_grad_fn(x)
        if fn is not None:
            marks.append((fn, fn.retained))
            fn.retained = weakref.ref(x)
    try:
        cots, retained = _engine(roots, cots_in, create_graph, retain_graph)
    finally:
        for fn, prev in marks:
            fn.retained = prev
    found = {id(x): g for x, g in retained}
    results = []
    for x in inputs:
        if x._grad_fn is None:
            g = cots.get(id(x._accum))[1] if x._accum is not None and id(x._accum) in cots \
                else None
            if g is not None and hooks.has_hooks(x._accum):
                g = hooks.apply_hooks(x._accum, g, create_graph)
        else:
            g = found.get(id(x))
        if g is None and not allow_unused:
            raise RuntimeError(f"The differentiated Tensor at index {len(results)} appears to "
                               "not have been used in the graph. Set allow_unused=True if "
                               "this is the desired behavior.")
        results.append(g)
    if not create_graph and current().trace is None:
        realize_storages([g._storage for g in results if g is not None])
    return tuple(results)


def _own_node(t: Tensor, name: str | None = None) -> Tensor:
    """t's value on a node of its own: a fresh tensor, or (with `name`) a recorded alias.

    NOTE: nodes are hash-consed, so a tensor on t's very node would be t itself to
    the autodiff pass, and `f = lambda a: a * t` would differentiate both operands.
    An identity reshape (a node no builder elides) keeps the two apart.
    """
    n = t.node
    own = node(Op.RESHAPE, (n,), n.shape, n.dtype, n.shape)
    if name is not None:
        return result(own, (t,), name, (n,))
    return wrap_node(own, t._storage.device)


def _prepare_args(args, argnums, watching: bool):
    """The arguments with those at `argnums` made differentiable; returns (args, nums).

    An argument that requires grad while an outer grad is `watching` becomes an
    alias recorded over it (gradients of gradients flow through); any other one a
    fresh leaf.
    """
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    args = list(args)
    for i in nums:
        a = args[i]
        if not isinstance(a, Tensor):
            a = copy_of(a)
            if not a.dtype.is_floating_point:
                a = a.float()
        if a._requires_grad and watching:
            a = _own_node(a, "AliasBackward0")
        else:
            a = _own_node(a.detach()).requires_grad_()
        args[i] = a
    return args, nums


def _reaches_outside(out: Tensor, leaves) -> bool:
    """Whether out's history reaches a tensor requiring grad other than `leaves`.

    Such a tensor (an outer grad's argument, a closed-over parameter) needs the
    gradient recorded (create_graph) so that an outer grad can differentiate it.
    """
    mine = {id(x._accum) for x in leaves if x._accum is not None}
    stack, seen = [edge(out)], set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen or id(e) in mine:
            continue
        seen.add(id(e))
        if isinstance(e, AccumulateGrad):
            return True
        stack.extend(e.edges)
    return False


def value_and_grad(fn, argnums=0):
    """JAX's `value_and_grad`: a function returning (fn(*args), d fn / d args[argnums]).

    `argnums` is an int (one gradient) or a tuple (a tuple of gradients). The
    arguments' `.grad` are left alone. Inside an outer `em.grad` (or with grad
    enabled and inputs that require grad) the results stay differentiable, so
    `em.grad(em.grad(f))` works.

    >>> import ember as em
    >>> em.value_and_grad(lambda x, y: (x * y).sum(), argnums=(0, 1))(
    ...     em.tensor([1.0, 2.0]), em.tensor([3.0, 4.0]))[1][0]
    tensor([3., 4.])
    """
    def wrapped(*args, **kwargs):
        watching = mode.is_grad_enabled()
        with mode.enable_grad():
            args2, nums = _prepare_args(args, argnums, watching)
            out = fn(*args2, **kwargs)
            if not isinstance(out, Tensor) or out.numel() != 1 or \
                    not out.dtype.is_floating_point:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise TypeError(f"grad requires a real scalar output from {_name(fn)}, "
                                f"got {shape}")
            ours = [args2[i] for i in nums]
            outer = watching and _reaches_outside(out, ours)
            if not out._requires_grad:
                grads = (None,) * len(ours)
            else:
                grads = grad_of([out], ours, create_graph=outer, allow_unused=True)
            grads = tuple(g if g is not None else wrap_node(b.zeros(x.dtype, tuple(x.shape)),
                                                                    x._storage.device)
                          for g, x in zip(grads, ours))
        value = out if outer else out.detach()
        return value, (grads[0] if isinstance(argnums, int) else grads)
    wrapped.__name__ = f"value_and_grad({_name(fn)})"
    return wrapped


def grad(fn, argnums=0):
    """JAX's `grad`: a function returning d fn(*args) / d args[argnums].

    >>> import ember as em
    >>> em.grad(lambda x: (x ** 3).sum())(em.tensor([2.0]))
    tensor([12.])
    """
    vg = value_and_grad(fn, argnums)

    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]
    wrapped.__name__ = f"grad({_name(fn)})"
    return wrapped


def _name(fn) -> str:
    return getattr(fn, "__name__", repr(fn))


def retain_grad(t: Tensor) -> None:
    if not t._requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    fn = current_grad_fn(t)
    if fn is not None:
        fn.retained = weakref.ref(t)
        t._retains_grad = True


__all__ += ["edge", "retain_grad"]


def _backward_method(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate the gradient of this tensor into the leaves' `.grad` (see PyTorch)."""
    backward(self, gradient, retain_graph, create_graph, inputs)


def _retain_grad_method(self) -> None:
    """Keep this non-leaf tensor's gradient in `.grad` after backward()."""
    retain_grad(self)


_backward_method.__name__, _retain_grad_method.__name__ = "backward", "retain_grad"
Tensor.backward = _backward_method
Tensor.retain_grad = _retain_grad_method
