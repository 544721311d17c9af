"""Backward plans: a training step's backward pass, replayed from its structure.

A loop that builds the same step each iteration hands `backward()` the same
records over the same forward structure every time; only the data differ. The
general pass walks the records, builds the backward graph from the VJP rules,
then walks that graph again to find its compiled program. A plan skips both:

- `probe(t)` checks that the pass is plain (no record freed, retaining its
  grad or stale) and walks the forward graph once: from the root's output, each
  leaf's pending in-place update and each existing `.grad`. The key is that
  walk's structure (`runtime.cache.walk`) with the records' signature: for each
  record, in the engine's order, the positions of its output and of the nodes
  it read, its rule if it has one, and whether each edge is a leaf, a record or
  nothing. The backward
  graph is a function of exactly these (the VJP rules read nodes, never data),
  so an equal key means an equal graph. A value already realised (a loss
  printed with `.item()`) is an input of the plan, and the walk goes on below it,
  where the records' nodes are; its token is still its whole structure (op, arg,
  dtype, shape, inputs), since the backward of exp(x) and of sin(x) differ
  though both values are known and of one shape.
- `Probe.replay()` finds the plan for the key and runs its program on the walk's
  inputs: it computes the leaves' pending values and gradients, exactly as the
  general pass's graph would (it is that graph, compiled once).
- On a miss, the general pass runs, and `Probe.learn()` turns the graph it built
  into the plan: the same outputs, with inputs numbered in the walk's order.

Python numbers in the forward graph (a learning rate, a scale that changes every
step) are runtime parameters of the plan, as of any cached program
(`runtime.cache.keyed_scalar` says which values stay keyed: exponents, identities).
A VJP rule reads a constant's node, not its value, except where it makes a constant
of its own or derives one from a value; with the constants hash-consed, such a
constant can even be the forward's node (a rule's 2/sqrt(pi) and a scale of that
value are one node). So a plan serves only the values it was learnt with until a
later general pass under the same key rebuilds the very same canonical graph: each
parameter whose value changed in between is then free (a constant that coincided
with its old value would have stayed a constant under the new one, and the graphs
would differ); the others stay keyed by value. Whether two parameters are equal is
part of the key (a rule's constant derived from one may coincide with another), and
a graph with a constant of its own that no parameter explains keeps serving only its
values.

Everything else (create_graph, an explicit gradient, `inputs=`, eager mode, the
interpreter back end, em.compile's tracing, `EMBER_PLANS=0`) takes the general
pass. Plans live in the compiled-graph cache (`runtime.cache.memory`, under keys
that start with "plan"), within its bounds, and count as its hits and misses;
`clear()` drops them (through `MemoryCache.discard`) and `stats()` says how many
passes replayed a plan and how many plans were made.
"""

from __future__ import annotations

import numpy as np

from ..ir.ops import Op
from ..runtime import cache, devices
from ..runtime.compiled import program_for, resolve_backend
from ..runtime.config import debug, options
from ..runtime.context import current
from . import function, storage
from .engine import grad_total, release, set_grads
from .records import AccumulateGrad, is_stale, record_order

__all__ = ["Probe", "clear", "probe", "stats"]

# passes that replayed a plan, and plans made
_counts = {"replayed": 0, "learned": 0}


def _is_plan(key) -> bool:
    return type(key) is tuple and len(key) > 0 and key[0] == "plan"


def clear() -> None:
    """Forget every plan (and reset the counters)."""
    cache.memory.discard(_is_plan)
    _counts.update(replayed=0, learned=0)


def stats() -> dict:
    """{"replayed": passes that replayed a plan, "learned": plans made}."""
    return dict(_counts)


class _Plan:
    """A cached plan: its program, the canonical graph it was built from, and the
    scalar parameters' values it serves (None where it serves every value)."""

    __slots__ = ("entry", "graph", "values", "nbytes")

    def __init__(self, entry, graph: tuple, values: tuple):
        self.entry, self.graph, self.values = entry, graph, values
        self.nbytes = entry.nbytes

    def serves(self, values: tuple) -> bool:
        return all(k is None or k == v for k, v in zip(self.values, values))


class Probe:
    """One backward pass's key, and what running its plan needs."""

    __slots__ = ("key", "inputs", "params", "sources", "rands", "order", "leaves",
                 "pending", "chains", "device", "values")

    def replay(self, retain_graph: bool) -> bool:
        """Run the cached plan; False (nothing changed) when there is none, it serves
        other scalar values, or it fails."""
        plan = cache.memory.get(self.key)
        if plan is None or not plan.serves(self.values):
            return False
        entry = plan.entry
        if not self._run(entry):
            return False
        _counts["replayed"] += 1
        if options.debug:
            debug(f"backward replayed its plan ({entry.kernels} kernels, "
                  f"{len(self.order)} records)")
        _free(self.order, retain_graph)
        return True

    def learn(self, grads: list[tuple]) -> bool:
        """Make a plan of the general pass's gradients `grads` ((leaf, node) pairs) and
        run it; False (nothing changed) when they do not fit the probe."""
        by_leaf = {id(x): g for x, g in grads}
        if len(by_leaf) != len(self.leaves) or any(id(x) not in by_leaf for x in self.leaves):
            return False
        outputs = self.chains + [grad_total(x, by_leaf[id(x)]) for x in self.leaves]
        found = cache.canonical_over(outputs, self.sources, self.rands)
        if found is None:
            return False
        canonical, own = found
        old = cache.memory.entries.get(self.key)  # NOTE: a peek, not a lookup
        if old is not None and old.graph == canonical:
            entry = old.entry
            # NOTE: the same graph for another value of a parameter: it read that one only
            # as a parameter (see the module's docstring)
            values = self.values if own else tuple(
                [None if k is None or k != v else v for k, v in zip(old.values, self.values)])
        else:
            try:
                entry = program_for(canonical, device=self.device)
            except Exception:  # noqa: BLE001 - the general pass says what is wrong
                return False
            values = self.values
        if entry.fn is None or not self._run(entry):
            return False
        new = old is None or old.entry is not entry
        cache.memory.put(self.key, _Plan(entry, canonical, values))
        if new:
            _counts["learned"] += 1
        if options.debug:
            debug(f"backward made a plan ({entry.kernels} kernels, "
                  f"{len(self.order)} records)")
        return True

    def _run(self, entry) -> bool:
        try:
            with np.errstate(all="ignore"):
                if self.device == "cpu":
                    values = entry.fn(self.inputs, self.params)
                else:
                    with devices.on(self.device):
                        values = entry.fn(self.inputs, self.params)
        except Exception:  # noqa: BLE001 - the general pass says what is wrong
            return False
        n = len(self.chains)
        storage.commit(self.pending, self.chains, values[:n])
        set_grads(self.leaves, values[n:])
        return True


def probe(t) -> Probe | None:
    """The probe of `t.backward()`, or None where the pass must take the general path."""
    root = t._grad_fn
    if (root is None or t._base is not None or not options.plans or current().eager
            or current().trace is not None or options.backend in ("interpreter", "reference")):
        return None
    order = record_order([root])
    leaves: list = []
    leaf_of: dict[int, int] = {}
    at = {id(f): i for i, f in enumerate(order)}
    for f in order:
        if f.freed or f.retained is not None or function.is_python(f) or function.has_hooks(f):
            return None  # NOTE: Python code (a custom Function, a hook) makes the gradient
        if is_stale(f):
            return None  # the general pass says which input changed
        for e in f.edges:
            if type(e) is AccumulateGrad and id(e) not in leaf_of:
                leaf = e.variable
                if leaf is None or function.has_hooks(e):
                    return None
                leaf_of[id(e)] = len(leaves)
                leaves.append(leaf)
    outputs = [root.out]
    pending, chains, flags = [], [], []
    for x in leaves:
        st = x._storage
        waits = not st.is_realized and all(st is not p for p in pending)
        if waits:
            pending.append(st)
            chains.append(st.node)
            outputs.append(st.node)
        if x._grad is not None:
            outputs.append(x._grad.node)
        flags.append((waits, x._grad is not None, x.dtype))
    walked = cache.walk(outputs, through_known=True, scalars=True)
    if walked is None:
        return None
    tokens, inputs, params, index, sources, rands = walked
    # NOTE: the program runs where the gradients live: its leaves' one device
    device = leaves[0]._storage.device if leaves else t._storage.device
    if any(x._storage.device != device for x in leaves):
        return None
    try:
        backend = resolve_backend("auto", device)
    except RuntimeError:
        return None  # the general pass raises it
    inputs = devices.all_in(inputs, device)
    values = tuple([v for v, n in zip(params, rands) if n.op is Op.CONST])
    records = []
    get = index.get
    for f in order:
        nodes = [get(f.out)] + [get(x) for x in f.in_nodes]
        if f.stops:
            nodes += ["stops"] + [get(x) for x in f.stops]
        if f.rule is not None:  # the rule, not the graph's walk, makes its gradient
            nodes.append(("rule", f.rule))
        if None in nodes:  # a node the walk did not reach
            return None
        nodes += [None if e is None else -1 - leaf_of[id(e)]
                  if type(e) is AccumulateGrad else at[id(e)] for e in f.edges]
        records.append(tuple(nodes))
    p = Probe()
    # NOTE: a plan's program is its back end's (keyed like lookup's programs)
    p.key = ("plan", backend, tokens, tuple(records), tuple(flags), _equalities(values))
    p.device = device
    p.inputs, p.params, p.sources, p.rands, p.values = inputs, params, sources, rands, values
    p.order, p.leaves, p.pending, p.chains = order, leaves, pending, chains
    return p


def _equalities(values: tuple) -> tuple:
    """Which scalar parameters are equal: each one's first equal (by position)."""
    first: dict = {}
    return tuple([first.setdefault(v, i) for i, v in enumerate(values)])


def _free(order, retain_graph: bool) -> None:
    if not retain_graph:
        release(order)
