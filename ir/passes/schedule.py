"""`schedule`: order the groups of a fusion and plan their memory.

Groups run in dependency order (a topological sort of the group DAG, ties
broken by graph order). The memory plan gives every intermediate buffer that a
kernel writes (not a graph output, at least `min_slot_bytes` large) a *slot*:
a slot is reused by a later kernel once every value in it, and every view of
those values, has been read for the last time. `peak_bytes` is the most memory
the buffers the schedule allocates (outputs and intermediates) hold at once.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from ..node import Node
from ..ops import Op
from .fusion import Fusion, Group, GroupKind

__all__ = ["Schedule", "schedule"]


@dataclass
class Schedule:
    fusion: Fusion
    steps: list[Group]
    last_use: dict[int, int]  # id(stored node) -> index of the last step reading it
    slots: dict[int, int] = field(default_factory=dict)  # id(node) -> slot number
    slot_bytes: list[int] = field(default_factory=list)
    peak_bytes: int = 0

    @property
    def graph(self):
        return self.fusion.graph


def _order(fusion: Fusion) -> list[Group]:
    index = {id(g): i for i, g in enumerate(fusion.groups)}
    indeg = {id(g): 0 for g in fusion.groups}
    users: dict[int, set[int]] = {id(g): set() for g in fusion.groups}
    for g in fusion.groups:
        for n in g.loads:
            src = fusion.group_of.get(id(n))
            if src is not None and src is not g and id(g) not in users[id(src)]:
                users[id(src)].add(id(g))
                indeg[id(g)] += 1
    ready = [index[k] for k, d in indeg.items() if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        g = fusion.groups[heapq.heappop(ready)]
        order.append(g)
        for u in users[id(g)]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, index[u])
    if len(order) != len(fusion.groups):  # pragma: no cover - fusion guarantees a DAG
        raise AssertionError("the fused groups form a cycle")
    return order


def _nbytes(n: Node) -> int:
    return n.numel * n.dtype.np.itemsize


def schedule(fusion: Fusion, min_slot_bytes: int = 1 << 16) -> Schedule:
    """Groups in dependency order with a memory plan (see the module docstring)."""
    steps = _order(fusion)
    end = len(steps)
    # a view's reads keep the stored value under it alive
    root: dict[int, Node] = {}
    last_use: dict[int, int] = {}
    for s, g in enumerate(steps):
        for n in g.loads:
            r = root.get(id(n), n)
            last_use[id(r)] = s
        if g.kind is GroupKind.VIEW:
            n = g.nodes[0]
            src = n.inputs[0]
            root[id(n)] = root.get(id(src), src)
    for o in fusion.graph.outputs:
        last_use[id(root.get(id(o), o))] = end

    plan = Schedule(fusion, steps, last_use)
    free: list[int] = []
    live: dict[int, int] = {}  # id(node) -> bytes held
    dying: dict[int, list[int]] = {}  # step -> ids whose life ends there
    peak = 0
    for s, g in enumerate(steps):
        for n in (g.outputs if g.kind is not GroupKind.VIEW else ()):
            nb = _nbytes(n)
            live[id(n)] = nb
            dying.setdefault(last_use.get(id(n), s), []).append(id(n))
            # NOTE: a value an output reads (itself or through a view) leaves the
            # run, so it never lives in a slot that a later run overwrites.
            if g.kind is not GroupKind.KERNEL or last_use.get(id(n)) == end or nb < min_slot_bytes:
                continue
            fits = [k for k in free if plan.slot_bytes[k] >= nb]
            if fits:
                k = min(fits, key=lambda k: plan.slot_bytes[k])
                free.remove(k)
            else:
                k = len(plan.slot_bytes)
                plan.slot_bytes.append(nb)
            plan.slots[id(n)] = k
        peak = max(peak, sum(live.values()))
        for i in dying.pop(s, ()):
            live.pop(i, None)
            if i in plan.slots:
                free.append(plan.slots[i])
    plan.peak_bytes = peak
    return plan


def describe(plan: Schedule) -> str:
    """One line per step (what EMBER_DEBUG=2 prints)."""
    index = {id(n): i for i, n in enumerate(plan.graph.nodes)}
    lines = []
    for s, g in enumerate(plan.steps):
        nodes = " ".join(f"%{index[id(n)]}" for n in g.nodes)
        ops = ",".join(n.op.name.lower() for n in g.nodes if n.op is not Op.EXPAND)
        tile = "" if g.tile_axis is None else f" tiled on axis {g.tile_axis}"
        lines.append(f"step {s}: {g.kind} {g.name} [{ops}] ({nodes}) "
                     f"domain={list(g.domain)}{tile}")
    lines.append(f"peak memory {plan.peak_bytes} bytes in {len(plan.slot_bytes)} reused slots")
    return "\n".join(lines)
