"""Autograd's engine: a backward pass over the records, as one graph of ordinary nodes.

`run_engine`'s walk visits the records (tracer/records.py) from the roots in
dependency order and asks the autodiff pass (ir/passes/autodiff.py) for each
record's vector-Jacobian product, so the backward computation is one graph,
realised at once with any pending updates of the leaves it writes into.

A record can name a rule of the pass instead (`GradFn.rule`: PyTorch's formula
where it differs from the primitives'). An input the gradient does not reach gets
zeros, so only a leaf that no record reaches keeps a `.grad` of None. Before a
record whose inputs or output were written in place is differentiated, the
versions of what PyTorch's formula saves are checked (`SAVES`), not of every node
the gradient happens to read.

With `create_graph=True` the cotangents are themselves recorded (a cotangent is
the output of a GradFn whose inputs are the incoming cotangent and the forward
inputs), so gradients of gradients work.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from ..ir import build as b
from ..ir.graph import toposort
from ..ir.node import Node, node
from ..ir.ops import Op
from ..ir.passes.autodiff import RULES, VJP, accumulate, vjp
from ..runtime.buffers import lookup, owned, shares_memory
from ..runtime.context import current
from . import function as hooks
from . import mode
from .records import (
    AccumulateGrad,
    GradFn,
    _describe,
    _describe_text,
    edge,
    is_stale,
    record_order,
)
from .tensor import Tensor, copy_of, from_array, wrap_node

# What PyTorch's formula saves for backward, by record name, where the nodes ember's
# gradient reads say otherwise (a composite reads its interior nodes; `a / b` reads
# its result). Entries: "out" (the result), i (input i), or (i, j) (input i, saved
# when input j gets a gradient). Positions beyond the record's inputs (a Python
# number operand) save nothing.
SAVES = {
    "SigmoidBackward0": ("out",),
    "ReluBackward0": ("out",),
    "SoftmaxBackward0": ("out",),
    "LogSoftmaxBackward0": ("out",),
    "DivBackward0": ((0, 1), 1),
    "LogsumexpBackward0": (0, "out"),
    "AmaxBackward0": (0, "out"),
    "AminBackward0": (0, "out"),
    "MaxBackward1": (0, "out"),
    "MinBackward1": (0, "out"),
    "MaxBackward0": (),  # max(dim): the indices (a node of the record, never written)
    "MinBackward0": (),
    "LinalgVectorNormBackward0": (0, "out"),
    "ProdBackward0": (0, "out"),
    "ProdBackward1": (0, "out"),
    "StdBackward0": (0, "out"),
    "RsqrtBackward0": ("out",),
    "SortBackward0": (),  # the indices, as max(dim)
    "MedianBackward1": (),  # median(dim): the indices, as max(dim)
    "WhereBackward0": (0,),  # the condition only
    "PowBackward1": (0, 1, "out"),
    # the other operand, for each one that gets a gradient (not a cast inside the record)
    "MulBackward0": ((0, 1), (1, 0)),
    "NansumBackward0": (0,),
    "NanmeanBackward0": (0,),  # PyTorch's nansum / count: the input, and the count
    "ErfinvBackward0": (0,),  # PyTorch's formula recomputes erfinv(x): the input only
}
# a product of two operands saves each for the other's gradient (matmul's records;
# "UnsafeViewBackward0" is also reshape's, whose one input this saves nothing of)
SAVES.update(dict.fromkeys(("MmBackward0", "DotBackward0", "MvBackward0", "BmmBackward0",
                            "UnsafeViewBackward0", "SqueezeBackward4"), ((0, 1), (1, 0))))


# Records whose PyTorch formula saves no tensor (only shapes, dims, scalars): they stay
# usable after a backward pass without retain_graph, as PyTorch's do. The two that
# also name a product of tensors (`x * y`'s "UnsafeViewBackward0" of a batched matmul,
# `x % y`) qualify only over a single tensor input.
NO_SAVES = frozenset((
    "ViewBackward0", "NarrowBackward0", "PermuteBackward0", "TransposeBackward0",
    "TBackward0", "UnsqueezeBackward0", "SqueezeBackward0", "SqueezeBackward1",
    "SelectBackward0", "SliceBackward0", "ExpandBackward0", "DiagonalBackward0",
    "AsStridedBackward0", "AliasBackward0", "FlipBackward0", "RepeatBackward0",
    "SplitBackward0", "CatBackward0", "StackBackward0", "DiagEmbedBackward0",
    "AddBackward0", "SubBackward0", "RsubBackward1", "NegBackward0", "CloneBackward0",
    "ToCopyBackward0", "FloorBackward0", "CeilBackward0", "RoundBackward0", "RoundBackward1",
    "TruncBackward0", "SignBackward0", "SumBackward0", "SumBackward1", "MeanBackward0",
    "MeanBackward1", "CumsumBackward0", "FillBackward0", "FillBackward2", "FillBackward3",
    "ZeroBackward0", "CopyBackwards", "UnbindBackward0", "TrilBackward0", "TriuBackward0",
    "LerpBackward0",
))
_ONE_INPUT = frozenset(("UnsafeViewBackward0", "RemainderBackward0"))


class _Spent:
    """The argument of a placeholder input of a record kept after its pass (no value)."""

    __slots__ = ("__weakref__",)

    def __repr__(self) -> str:
        return "spent"


# per thread, weak references to the records its last backward pass released: its
# next pass finishes releasing those still alive (see `release`)
_released = threading.local()


def release(order) -> None:
    """What a backward pass without retain_graph does to its records, as PyTorch does:
    a record whose formula saves tensors is freed (a later pass through it raises);
    one that saves none stays usable.

    NOTE: the usable ones keep their forward nodes, and all of them their inputs'
    storages, until the next pass (or their end, the common case: a training step's
    records die with its loss), which rebuilds what still lives over placeholders
    (`_release_held`) and so lets go of memory PyTorch frees; done here, that would cost
    every training step for records about to die.
    """
    for ref in getattr(_released, "refs", ()):
        fn = ref()
        if fn is not None:
            _release_held(fn)
    for fn in order:
        if not fn.freed and not _saves_nothing(fn):
            fn.freed = True
            fn.in_nodes = fn.out = None
            if hooks.is_python(fn):
                fn.rule[0].release()  # a custom function's ctx lets go of its saved tensors
        fn.stops = ()
    _released.refs = list(map(weakref.ref, order))


def _saves_nothing(fn: GradFn) -> bool:
    """Whether PyTorch's formula for fn saves no tensor (only shapes, dims, numbers)."""
    name = fn._name
    if hooks.is_python(fn):  # a custom function: whether its ctx saved tensors
        return fn.rule[0].saves_nothing()
    return fn.rule is None and (name in NO_SAVES or (
        name in _ONE_INPUT and fn.in_nodes is not None and len(fn.in_nodes) == 1))


def _release_held(fn: GradFn) -> None:
    """Release what a released record still holds: its inputs' and output's storages
    (no version is checked any more) and, for a usable one, its forward nodes."""
    fn.saved = tuple([(None, None, desc) for _, _, desc in fn.saved])
    fn.out_saved = (None, None)
    if not fn.freed and hooks.is_python(fn):
        fn.in_nodes, fn.out = (), None  # NOTE: its Python backward reads neither
    elif not fn.freed and not _keep_rule(fn):
        fn.freed = True
        fn.in_nodes = fn.out = None


def _keep_rule(fn: GradFn) -> bool:
    """Rebuild the output of fn, a record whose formula reads no saved value, over
    placeholders of its inputs; False (fn untouched) where it reads a buffer.

    NOTE: the forward nodes would keep their buffers alive, which PyTorch frees; the
    placeholders hold only dtypes and shapes, and the rules of these records read
    no more of their inputs (a constant inside the output is kept, a buffer not).
    """
    if fn.out is None:
        return False
    if all(n.op is Op.BUFFER and type(n.arg) is _Spent for n in fn.in_nodes):
        return True  # kept by an earlier pass
    memo = {}
    for n in fn.in_nodes:
        if n not in memo:
            memo[n] = node(Op.BUFFER, (), _Spent(), n.dtype, n.shape)
    for n in toposort([fn.out], stop=lambda n: n in memo):
        if n in memo:
            continue
        if not n.inputs:
            if n.op is Op.BUFFER or n.op is Op.RAND:
                return False  # a value the rule would read: freed
            memo[n] = n
        else:
            memo[n] = node(n.op, tuple([memo[i] for i in n.inputs]), n.arg, n.dtype, n.shape)
    fn.out = memo[fn.out]
    fn.in_nodes = tuple([memo[n] for n in fn.in_nodes])
    return True


def _saved_positions(fn: GradFn, used: set[int], wanted) -> tuple[set[int], bool]:
    """(input positions, whether the output) whose versions backward of fn checks."""
    spec = SAVES.get(fn._name)
    if spec is None:  # what the gradient's graph reads (any interior node: all inputs)
        interior = used - {id(n) for n in fn.in_nodes} - {id(fn.out)}
        inputs = {i for i, n in enumerate(fn.in_nodes) if id(n) in used or interior}
        return inputs, id(fn.out) in used
    inputs, count = set(), len(fn.in_nodes)
    for entry in spec:
        if isinstance(entry, tuple):
            i, j = entry
            if j < count and any(fn.in_nodes[k] is fn.in_nodes[j] for k in wanted):
                inputs.add(i)
        elif entry != "out":
            inputs.add(entry)
    return {i for i in inputs if i < count}, "out" in spec


def _check_versions(fn: GradFn, used: set[int], wanted) -> None:
    out_storage, out_version = fn.out_saved
    positions, out = _saved_positions(fn, used, wanted)
    checks = [(st, version, desc, "input") for i, (st, version, desc) in enumerate(fn.saved)
              if i in positions]
    if out:
        checks.append((out_storage, out_version, None, "output"))
    for st, version, desc, kind in checks:
        if version is not None and st.version != version:
            what = _describe_text(desc) if desc else "the " + kind
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by "
                f"an inplace operation: {what} of {fn.name()} is at version "
                f"{st.version}; expected version {version} instead. Hint: the operation "
                "that produced it or used it must not be followed by an in-place change "
                "before backward().")


def _wanted(fn: GradFn) -> list[int]:
    """The input positions of fn that get a cotangent: one per distinct input node.

    NOTE: nodes are hash-consed, so `x * x` (or `x * x.view(...)`) reads one node at
    two positions; the pass gives that node the cotangent of both uses, which must
    reach the graph once, not once per position.
    """
    wanted, seen = [], set()
    for i, e in enumerate(fn.edges):
        if e is not None and id(fn.in_nodes[i]) not in seen:
            seen.add(id(fn.in_nodes[i]))
            wanted.append(i)
    return wanted


def _direct(fn: GradFn, g) -> list | None:
    """The (edge, cotangent) pairs of a record that is one primitive over its inputs
    (and constants): what `vjp` gives it, without a walk. None for any other record.

    NOTE: a node read at several positions (x * x) gets the sum of their cotangents
    once, on the edge of the first position that has one, as `vjp` gives it.
    """
    out = fn.out
    ins = out.inputs
    in_nodes = fn.in_nodes
    if not ins or out in in_nodes:
        return None
    for i in ins:
        if i.inputs and i not in in_nodes:
            return None
    edges = fn.edges
    sums: dict[int, object] = {}
    for i, gi in zip(ins, VJP[out.op](out, g)):
        if gi is None or not i.dtype.is_floating_point:
            continue
        for j, x in enumerate(in_nodes):
            if x is i and edges[j] is not None:
                prev = sums.get(j)
                sums[j] = gi if prev is None else accumulate(prev, gi)
                break
    for j in _wanted(fn):  # an input the result does not read: zeros, as in `_cotangents`
        if j not in sums and all(in_nodes[k] is not in_nodes[j] for k in sums):
            sums[j] = b.zeros(in_nodes[j].dtype, in_nodes[j].shape)
    return [(edges[j], gi) for j, gi in sums.items()]


def _cotangents(fn: GradFn, g, wanted: list[int], reads: bool) -> tuple[list, set[int]]:
    """The cotangents of fn's inputs at positions `wanted` given g (fn's rule, or the
    walk of its graph), and the forward nodes they read (see `vjp`).

    An input that the gradient does not reach gets zeros, as PyTorch's formulas give
    (an empty part of a `cat`, a branch whose every element was replaced); only a
    leaf that no record reaches keeps a `.grad` of None.
    """
    if fn.rule is not None:
        name, *args = fn.rule
        grads = RULES[name](fn.out, g, fn.in_nodes, *args)
        grads = [grads[i] for i in wanted]
        used = {id(fn.out)} | {id(n) for n in fn.in_nodes}
    else:
        wrt = tuple(fn.in_nodes[i] for i in wanted)
        grads, used = vjp(fn.out, g, wrt,
                          fn.in_nodes + fn.stops if fn.stops else fn.in_nodes, reads=reads)
    return [gi if gi is not None else b.zeros(fn.in_nodes[i].dtype, fn.in_nodes[i].shape)
            for i, gi in zip(wanted, grads)], used


def _zeros_for_unused(fn: GradFn, given: set[int]) -> list:
    """(edge, zeros) for each input of a dense record whose edge got no cotangent."""
    out = []
    for i in _wanted(fn):
        e = fn.edges[i]
        if id(e) not in given:
            given.add(id(e))
            n = fn.in_nodes[i]
            out.append((e, b.zeros(n.dtype, n.shape)))
    return out


def _engine(roots, root_cots, create_graph: bool, retain_graph: bool, as_nodes: bool = False):
    """Propagate cotangents from roots; returns ({edge id: (edge, cotangent)}, retained).

    Only the entries of AccumulateGrad edges are returned (as Tensors), with the
    (tensor, cotangent) pairs of the records that retain their grad. Without
    create_graph the cotangents flow as nodes and become Tensors only there;
    everything is lazy, and the caller realises what it keeps.
    """
    order = record_order(roots)
    for fn in order:
        if fn.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access "
                "saved tensors after they have already been freed). Saved intermediate values "
                "of the graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time or "
                "if you need to access saved tensors after calling backward.")
    cots: dict[int, tuple] = {}

    def add(e, g):
        prev = cots.get(id(e))
        if prev is not None:
            g = prev[1] + g if create_graph else b.binary(Op.ADD, prev[1], g)
        cots[id(e)] = (e, g)

    for r, g in zip(roots, root_cots):
        add(r, g if create_graph else g.node)
    retained = []
    with mode.set_grad_enabled(bool(create_graph)):
        for fn in order:
            entry = cots.get(id(fn))
            if entry is None:
                continue
            g = entry[1]
            before = g
            if hooks.has_hooks(fn):  # Tensor.register_hook on the record's output
                g = hooks.apply_hooks(fn, g, create_graph)
            if fn.retained is not None and fn.retained() is not None:
                # NOTE: as PyTorch, `.grad` of retain_grad is the gradient after the hooks,
                # an input of em.autograd.grad gets the one before them
                kept = fn.retained()
                retained.append((kept, g if kept._retains_grad else before))
            if fn.rule is not None and type(fn.rule[0]) is not str:
                fn.rule[0].propagate(fn, g, add, cots, create_graph)  # em.autograd.Function
                continue
            stale = is_stale(fn)
            if not stale and fn.rule is None:
                direct = _direct(fn, g.node if create_graph else g)
                if direct is not None:
                    if fn.dense:
                        direct += _zeros_for_unused(fn, {id(e) for e, _ in direct})
                    for e, gi in direct:
                        add(e, _recorded_cotangent(fn, g, gi) if create_graph else gi)
                    continue
            wanted = _wanted(fn)
            if not wanted:
                continue
            grads, used = _cotangents(fn, g.node if create_graph else g, wanted, stale)
            if stale:
                _check_versions(fn, used, wanted)
            for i, gi in zip(wanted, grads):
                add(fn.edges[i], _recorded_cotangent(fn, g, gi) if create_graph else gi)
    if not retain_graph:
        release(order)
    leaves = {k: v for k, v in cots.items() if isinstance(v[0], AccumulateGrad)}
    if not create_graph and not as_nodes:
        leaves = {k: (e, _as_tensor(g, _device_of(e.variable))) for k, (e, g) in leaves.items()}
        retained = [(t, _as_tensor(g, t._storage.device)) for t, g in retained]
    return leaves, retained


def _device_of(t: Tensor | None) -> str:
    return "cpu" if t is None else t._storage.device


def _as_tensor(n, device: str) -> Tensor:
    """A cotangent tensor on `device` whose value is node n.

    NOTE: a cotangent can be a forward value itself (d(x * w)/dx is w); when that is
    a realised buffer, the gradient gets a copy, so it owns its memory and never
    aliases a parameter.
    """
    if n.op is Op.BUFFER:
        if current().trace is not None:
            # em.compile is tracing: the buffer may be an input, whose value is not known
            return wrap_node(node(Op.CAST, (n,), None, n.dtype, n.shape), device)
        # NOTE: from_array copies a buffer's device memory itself (buffers.owned)
        a = lookup(n.arg).array.reshape(n.shape)
        return from_array(a.copy() if isinstance(a, np.ndarray) else a, n.dtype, device)
    return wrap_node(n, device)


def _recorded_cotangent(fn: GradFn, g: Tensor, gi) -> Tensor:
    """A cotangent whose own gradient can be taken (create_graph=True)."""
    t = _as_tensor(gi, g._storage.device)
    edges = (edge(g),) + fn.edges
    if any(e is not None for e in edges):
        saved = ((g._storage, g._storage.version, _describe(g)),) + fn.saved
        t._grad_fn = GradFn(fn.name().replace("Backward", "BackwardBackward"), edges,
                            (g.node,) + fn.in_nodes, gi, saved, (t._storage, 0))
        t._requires_grad = True
    return t


def _root_cotangent(t: Tensor, gradient) -> Tensor:
    if gradient is None:
        if t.numel() != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs "
                               f"(the output has shape {tuple(t.shape)}); pass gradient=")
        return wrap_node(b.ones(t.dtype, tuple(t.shape)), t._storage.device)
    if not isinstance(gradient, Tensor):
        gradient = copy_of(gradient, dtype=t.dtype, device=t._storage.device)
    if tuple(gradient.shape) != tuple(t.shape):
        raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of "
                           f"{tuple(gradient.shape)} and output[0] has a shape of "
                           f"{tuple(t.shape)}.")
    return gradient if gradient.dtype is t.dtype else gradient.to(t.dtype)


def _need_grad(t: Tensor) -> None:
    if not t._requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                           "grad_fn")


def _forward_values(roots) -> dict:
    """node -> value, for the storages that the records' inputs and outputs read,
    unchanged since recorded: the chain each was computed from (`Storage.source`) ->
    its buffer, when memory is shared with NumPy.

    NOTE: a value computed from shared memory, or shared itself (`t.numpy()`), is not
    kept in `runtime.realized`; without these a backward pass would compute it again
    from what shared memory holds now. torch reads the value it saved: what was
    computed, or the shared memory as NumPy left it. The key is the storage's chain,
    not the record's node: a tensor laid out unlike its storage (the product of a
    transposed operand) reads its chain through a view, and that view is the node.
    """
    if not shares_memory():
        return {}
    values = {}
    for fn in record_order(roots):
        if fn.in_nodes is None:
            continue
        for st, v, *_ in (fn.out_saved, *fn.saved):
            # NOTE: a record released by an earlier pass holds no storages (None)
            if st is not None and st.version == v and st.is_realized and (
                    src := st.source) is not None:
                values[src] = st.buffer.array.reshape(src.shape)
    return values


def grad_total(x: Tensor, g: Node) -> Node:
    """The node of x's .grad once cotangent g is added to it."""
    g = b.cast(g, x.dtype)
    if x._grad is not None:
        g = b.binary(Op.ADD, b.cast(x._grad.node, x.dtype), g)
    return g


def set_grads(tensors, values) -> None:
    """Make each realised value its tensor's .grad (updating an existing .grad in place)."""
    for x, value in zip(tensors, values):
        old = x._grad
        if old is not None and not old._requires_grad and old._view.is_full(
                old._storage.numel) and old.dtype is x.dtype:
            old._storage.set_array(owned(value))
        else:
            x._grad = from_array(owned(value).reshape(tuple(x.shape)), x.dtype, x._storage.device)
