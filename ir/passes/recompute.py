"""`recompute`: a kernel recomputes a cheap value instead of loading it stored.

Fusion puts every node in one group, and a value that another group reads is stored by
its own group and loaded by the reader. Where that value is a few cheap elementwise ops
(add, sub, mul, neg in float32 or float64) over values its group stores anyway or loads,
storing it costs a write of the whole array and a read by every reader, while recomputing
it costs each reader a few ops over tiles already in cache. Backward graphs are full of
such values: autodiff's rules read forward intermediates, and tanh-GELU's forward kernel
stored seven arrays of the MLP's width for its backward where the input and the tanh
determine them all.

The choice, for each kernel group A (`recompute_in(a, ...)`), over S, the values A stores:

1. A value r of S is dropped from it where every reader of r is a kernel statement that
   can compute it (not a matmul's operand: a matmul reads whole arrays before the tiles),
   every reading group accepts r's recipe (its domain holds it; the back end's rules let
   it join), and the recipe (r and the cheap ops under it in A, down to values of S other
   than r, A's loads and constants) has at most `MAX_RECIPE` ops. Latest values first.
2. A value A computes but does not store (a tanh, say) joins S where that drops two or
   more others: one array stored instead of several.
3. Each dropped value's recipe is found again over the final S; one that no longer fits
   is stored after all (S only grows, so the others' recipes stay valid) until none
   changes.

The readers then hold each recipe's nodes as `recomputed` members: computed there, never
stored from there. Every value is computed by the same ops from the same inputs wherever
it is computed, so results are unchanged, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import dtypes as dt
from ..node import Node
from ..ops import Op

__all__ = ["CHEAP", "MAX_RECIPE", "recompute_in"]

CHEAP = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.NEG})
MAX_RECIPE = 4  # ops a reader recomputes for one value
_FLOATS = (dt.float32, dt.float64)


def recompute_in(a, groups_of: Callable[[Node], list], users: dict[int, list[Node]],
                 outs: set[int], accepts: Callable[[object, Node], bool],
                 add: Callable[[object, Node], None]) -> None:
    """Let kernel group `a`'s readers recompute what it need not store (see the module
    docstring). `groups_of(n)`: the groups that compute n (its own first, then those that
    recompute it); `users`: id(node) -> the nodes reading it; `outs`: ids of the graph's
    outputs; `accepts(g, n)`: whether group g (a kernel) may compute node n too;
    `add(g, n)` makes g compute n too. `a.nodes` is in topological order and `a.members`
    holds their ids (and `a.recomputed` those it computes for another group)."""
    members = a.members

    def readers(r: Node) -> list | None:
        """The groups other than a reading r, or None where one reads it as a matmul
        operand."""
        found: list = []
        for u in users.get(id(r), ()):
            for g in groups_of(u):
                if g is a:
                    continue
                if u.op is Op.MATMUL:
                    return None
                if g not in found:
                    found.append(g)
        return found

    stored = [n for n in a.nodes if id(n) not in a.recomputed and (
        id(n) in outs or read_outside(n, a, users, groups_of))]
    keep = {id(n) for n in stored}

    def recipe(r: Node, anchors: set[int]) -> list[Node] | None:
        """r's recipe over `anchors` (topological order), or None where it does not fit."""
        nodes: list[Node] = []
        seen: set[int] = set()

        def visit(n: Node) -> bool:
            seen.add(id(n))
            for i in n.inputs:
                if id(i) in seen or i.op is Op.CONST or id(i) in anchors or id(i) not in members:
                    continue
                if i.op not in CHEAP or i.dtype not in _FLOATS or not visit(i):
                    return False
            nodes.append(n)
            return len(nodes) <= MAX_RECIPE

        return nodes if visit(r) else None

    def droppable(r: Node, anchors: set[int]) -> list[Node] | None:
        if r.op not in CHEAP or r.dtype not in _FLOATS or id(r) in outs:
            return None
        gs = readers(r)
        nodes = recipe(r, anchors - {id(r)}) if gs else None
        if nodes is None or not all(accepts(g, n) for g in gs for n in nodes):
            return None
        return nodes

    dropped: dict[int, Node] = {}
    for r in reversed(stored):
        if droppable(r, keep) is not None:
            keep.discard(id(r))
            dropped[id(r)] = r
    for t in reversed(_blockers(a.nodes, stored, keep, members)):
        trial = keep | {id(t)}
        gained = []
        for r in reversed(stored):
            if id(r) in trial and r is not t and droppable(r, trial) is not None:
                trial.discard(id(r))
                gained.append(r)
        if len(gained) >= 2:
            keep = trial
            dropped.update((id(r), r) for r in gained)
    recipes: dict[int, list[Node]] = {}
    changed = True
    while changed:
        changed = False
        for key, r in list(dropped.items()):
            nodes = droppable(r, keep)
            if nodes is None:
                keep.add(key)
                del dropped[key]
                changed = True
            else:
                recipes[key] = nodes
    for key, r in dropped.items():
        for g in readers(r):
            for n in recipes[key]:
                if id(n) not in g.members:
                    add(g, n)


def _blockers(nodes: list[Node], stored: list[Node], keep: set[int],
              members: set[int]) -> list[Node]:
    """The values of the group, not stored, that stand in the way of a stored cheap
    value's recipe (the candidates of step 2), in topological order."""
    found: dict[int, Node] = {}
    for r in stored:
        if id(r) not in keep or r.op not in CHEAP:
            continue
        stack, depth = list(r.inputs), 0
        while stack and depth < MAX_RECIPE:
            i = stack.pop()
            depth += 1
            if id(i) not in members or id(i) in keep or i.op is Op.CONST:
                continue
            if i.op in CHEAP:
                stack.extend(i.inputs)
            elif i.op not in (Op.EXPAND, Op.MATMUL):
                found[id(i)] = i
    return [n for n in nodes if id(n) in found]


def read_outside(n: Node, g, users: dict[int, list[Node]], groups_of) -> bool:
    """Whether a group other than g reads n without computing it: then g stores n.
    `groups_of(u)`: the groups that compute u (see `recompute_in`)."""
    for u in users.get(id(n), ()):
        for h in groups_of(u):
            if h is not g and id(n) not in h.members:
                return True
    return False
