"""Autograd's front end: records, `backward`, `em.autograd.grad`, `em.grad`.

Each operation on tensors that require grad records a `GradFn`: the operation's
output node expressed over its input nodes, plus edges to the inputs' own
records (another GradFn, an `AccumulateGrad` for a leaf, or None). `backward`
walks the records from the root in dependency order and asks the autodiff pass
(ir/passes/autodiff.py) for each record's vector-Jacobian product, so the
backward computation is one graph of ordinary nodes, realised at once with any
pending updates of the leaves it writes into.

A record can name a rule of the pass instead (`GradFn.rule`: PyTorch's formula
where it differs from the primitives'). An input the gradient does not reach gets
zeros, so only a leaf that no record reaches keeps a `.grad` of None. Before a
record whose inputs or output were written in place is differentiated, the
versions of what PyTorch's formula saves are checked (`SAVES`), not of every node
the gradient happens to read.

With `create_graph=True` the cotangents are themselves recorded (a cotangent is
the output of a GradFn whose inputs are the incoming cotangent and the forward
inputs), so gradients of gradients work, as does `em.grad(em.grad(f))`.
"""

from __future__ import annotations

import threading
import weakref

from ..ir import build as b
from ..ir.graph import toposort
from ..ir.node import Node, node
from ..ir.ops import Op
from ..ir.passes.autodiff import RULES, VJP, accumulate, vjp
from ..runtime.buffers import lend, lookup, owned, shares_memory
from ..runtime.context import current
from . import mode
from .storage import realize_storages
from .tensor import Tensor, from_array, result, wrap_node

__all__ = ["AccumulateGrad", "GradFn", "backward", "current_grad_fn", "grad", "grad_of",
           "record", "value_and_grad"]


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
    (never for a detached alias: its history stays cut)."""
    fn = t._grad_fn
    base = t._base
    if (base is not None and base._requires_grad and t._fn_version != t._storage.version
            and not t._detached and mode.is_grad_enabled()):
        base_node = base.node
        out = b.as_strided(base_flat(base, base_node), t._view)
        fn = GradFn("AsStridedBackward0", (edge(base),), (base_node,), out,
                    ((base._storage, base._storage.version, _describe(base)),),
                    (t._storage, t._storage.version))
        _set_grad_fn(t, fn)
    return fn


# ---------------------------------------------------------------------------
# the engine

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
    "ZeroBackward0", "CopyBackwards", "UnbindBackward0",
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
    (`_finish`) and so lets go of memory PyTorch frees; done here, that would cost
    every training step for records about to die.
    """
    for ref in getattr(_released, "refs", ()):
        fn = ref()
        if fn is not None:
            _finish(fn)
    for fn in order:
        if not fn.freed and not _saves_nothing(fn):
            fn.freed = True
            fn.in_nodes = fn.out = None
        fn.stops = ()
    _released.refs = list(map(weakref.ref, order))


def _saves_nothing(fn: GradFn) -> bool:
    """Whether PyTorch's formula for fn saves no tensor (only shapes, dims, numbers)."""
    name = fn._name
    return fn.rule is None and (name in NO_SAVES or (
        name in _ONE_INPUT and fn.in_nodes is not None and len(fn.in_nodes) == 1))


def _finish(fn: GradFn) -> None:
    """Release what a released record still holds: its inputs' and output's storages
    (no version is checked any more) and, for a usable one, its forward nodes."""
    fn.saved = tuple([(None, None, desc) for _, _, desc in fn.saved])
    fn.out_saved = (None, None)
    if not fn.freed and not _keep_rule(fn):
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
            if fn.retained is not None and fn.retained() is not None:
                retained.append((fn.retained(), g))
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
        leaves = {k: (e, _as_tensor(g)) for k, (e, g) in leaves.items()}
        retained = [(t, _as_tensor(g)) for t, g in retained]
    return leaves, retained


def _as_tensor(n) -> Tensor:
    """A cotangent tensor whose value is node n.

    NOTE: a cotangent can be a forward value itself (d(x * w)/dx is w); when that is
    a realised buffer, the gradient gets a copy, so it owns its memory and never
    aliases a parameter.
    """
    if n.op is Op.BUFFER:
        if current().trace is not None:
            # em.compile is tracing: the buffer may be an input, whose value is not known
            return wrap_node(node(Op.CAST, (n,), None, n.dtype, n.shape))
        buf = lookup(n.arg)
        return from_array(buf.array.reshape(n.shape).copy(), n.dtype, buf.device)
    return wrap_node(n)


def _recorded_cotangent(fn: GradFn, g: Tensor, gi) -> Tensor:
    """A cotangent whose own gradient can be taken (create_graph=True)."""
    t = _as_tensor(gi)
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
        return wrap_node(b.ones(t.dtype, tuple(t.shape)))
    if not isinstance(gradient, Tensor):
        from .creation import tensor
        gradient = tensor(gradient, dtype=t.dtype)
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
    """node -> value, for the records' inputs and outputs that storages hold, unchanged
    since recorded (`Storage.source`), when memory is shared with NumPy.

    NOTE: a value computed from shared memory, or shared itself (`t.numpy()`), is not
    kept in `runtime.realized`; without these a backward pass would compute it again
    from what shared memory holds now. torch reads the value it saved: what was
    computed, or the shared memory as NumPy left it.
    """
    if not shares_memory():
        return {}
    values = {}
    for fn in record_order(roots):
        if fn.in_nodes is None:
            continue
        ins = [(n, st, v) for n, (st, v, _) in zip(fn.in_nodes, fn.saved)]
        for n, st, v in [(fn.out, *fn.out_saved)] + ins:
            # NOTE: a record released by an earlier pass holds no storages (None)
            if st is not None and st.source is n and st.version == v and st.is_realized:
                values[n] = st.buffer.array.reshape(n.shape)
    return values


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
    leaves = [(e.variable, g) for e, g in cots.values()
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
                x._grad = wrap_node(gnode)
            else:
                old = x._grad
                old._storage.write(b.write(old._storage.node, b.binary(
                    Op.ADD, b.cast(old.node, x.dtype), gnode), old._view))
        return
    nodes = [grad_total(x, g if isinstance(g, Node) else g.node) for x, g in pairs]
    # the leaves' pending in-place updates are realised in the same graph
    pending = [x._storage for x, _ in pairs if not x._storage.is_realized]
    values = realize_storages(pending, extra=tuple(nodes))
    set_grads([x for x, _ in pairs], values)


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
            x._grad = from_array(owned(value).reshape(tuple(x.shape)), x.dtype)


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
    from .creation import tensor
    for i in nums:
        a = args[i]
        if not isinstance(a, Tensor):
            a = tensor(a, dtype=None)
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
            grads = tuple(g if g is not None else wrap_node(b.zeros(x.dtype, tuple(x.shape)))
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


from . import plans  # noqa: E402 - it reads the engine's names above
