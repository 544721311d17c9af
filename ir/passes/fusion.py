"""`fuse`: partition a graph's nodes into kernels, view steps and extern steps.

A *kernel* group is a set of nodes computed together over one iteration domain
(the largest shape among them): elementwise ops, same-rank EXPANDs (free inside
a kernel: NumPy and Triton broadcast), reductions (their prologue is whatever
elementwise work produced their input in the group, their epilogue whatever
consumes them; sibling reductions over the same rows land in the same group, so
softmax and layer norm are one kernel), and MATMUL, which a kernel computes
first, whole, before its elementwise epilogue. Every node belongs to one group, its
own, and a value another group needs is stored; the one exception is a cheap value
over large arrays (a few adds and multiplies over values stored anyway), which the
kernels that read it may compute again instead (ir/passes/recompute.py: the rules
ask `FusionRules.may_recompute`), so that it is never stored.

Other movement ops become *view* steps (no compute: a strided view of a stored
value), and extern ops (TAKE, ..., WRITE, RAND, ARANGE) become *extern* steps.
Leaves (BUFFER, CONST) belong to no group: kernels read buffers and inline
constants. Which op goes where is its `Placement` in `ir.ops.OPINFO`.

Fusion is greedy, in topological order: a node joins the group of an input when

* the shapes are compatible (same rank; each axis equal, or 1 on one side),
* joining creates no cycle between groups (checked on the group dependency DAG),
* the back end accepts it (`FusionRules.why_not`: NumPy keeps a large kernel's axis
  to tile, Triton keeps one set of reduced axes per kernel, ...).

What differs between back ends is asked of a `FusionRules` (codegen/backend.py's
`Backend`s are these): where an op goes (`placement`: Triton computes RAND inside
kernels, NumPy calls it), whether a node may join (`why_not`) and along which axis
a kernel is tiled (`tile_axis`). The base rules fuse whatever is compatible and
tile nothing.

Each refusal is recorded in `Fusion.notes` (shown with EMBER_DEBUG=2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from ..graph import Graph
from ..node import Node
from ..ops import FUSIBLE, OPINFO, REDUCE, Op, Placement
from .recompute import read_outside, recompute_in

__all__ = ["KERNEL_OPS", "Fusion", "FusionRules", "Group", "GroupKind", "fuse", "joined"]

# ops that may be members of a kernel group (EXPAND only when its input is in it):
# those OPINFO places in kernels
KERNEL_OPS = FUSIBLE

class GroupKind(StrEnum):
    """What a group of a fusion is (its value is the word the debug report uses)."""

    KERNEL = "kernel"  # nodes computed together over one domain
    VIEW = "view"      # one movement op: a strided view of a stored value
    EXTERN = "extern"  # one op run by a library call


@dataclass(eq=False)
class Group:
    """A kernel, a view step or an extern step; `nodes` in topological order."""

    id: int
    kind: GroupKind
    nodes: list[Node]
    domain: tuple[int, ...] = ()
    reduce_axes: frozenset = frozenset()
    shapes: set = field(default_factory=set)  # shapes of computed (tiled) members
    deps: set = field(default_factory=set)  # ids of groups this one reads from
    tile_axis: int | None = None
    outputs: list[Node] = field(default_factory=list)  # members read outside
    loads: list[Node] = field(default_factory=list)  # non-members read (no CONSTs)
    members: set = field(default_factory=set)  # ids of nodes (set when fusion is done)
    recomputed: set = field(default_factory=set)  # ids of another group's nodes computed too

    @property
    def name(self) -> str:
        """Its one name, in the schedule, the debug report and the generated source:
        k<id> for a kernel (its function's name), v<id> for a view, x<id> for an extern."""
        return f"{_PREFIX[self.kind]}{self.id}"

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} {len(self.nodes)} nodes domain={list(self.domain)}>"


_PREFIX = {GroupKind.KERNEL: "k", GroupKind.VIEW: "v", GroupKind.EXTERN: "x"}
# NOTE: notes name groups while fusion still merges them; `@<id>` is resolved to
# the final group's name when fusion is done
_DRAFT = re.compile(r"@(\d+)")


@dataclass
class Fusion:
    graph: Graph
    groups: list[Group]
    group_of: dict[int, Group]  # id(node) -> its group
    notes: list[str]

    @property
    def kernels(self) -> list[Group]:
        return [g for g in self.groups if g.kind is GroupKind.KERNEL]


def _compatible(a: tuple, b: tuple) -> bool:
    # NOTE: an extent 1 against an extent 0 is not compatible: the domain takes the larger
    # extent, and a domain of 1 along an empty axis would index the empty member (a kernel
    # over the empty domain would never compute the other)
    return len(a) == len(b) and all(x == y or (x == 1 and y != 0) or (y == 1 and x != 0)
                                    for x, y in zip(a, b))


def _extent(n: Node) -> tuple[int, ...]:
    return n.inputs[0].shape if n.op in REDUCE else n.shape


def _computed(n: Node) -> bool:
    """Members that a tile computes (EXPAND is free; MATMUL runs whole before the tiles)."""
    return n.op is not Op.EXPAND and n.op is not Op.MATMUL


def joined(gs: list[Group], n: Node) -> tuple[set, frozenset]:
    """(shapes of the computed members, reduced axes) of the union of gs with n."""
    shapes = set().union(*(g.shapes for g in gs))
    raxes = frozenset().union(*(g.reduce_axes for g in gs))
    if _computed(n):
        shapes = shapes | {n.shape}
    if n.op in REDUCE:
        raxes = raxes | frozenset(n.arg)
    return shapes, raxes


class FusionRules:
    """What fusion asks a back end. These base rules place each op as OPINFO says,
    let every compatible node join and tile nothing; a back end overrides what it
    decides otherwise (codegen/backend.py). `fuser` is the fusion in progress: rules
    may ask it `group(node)` (a node's group so far) and `contiguous(node)`."""

    name = "generic"

    def placement(self, n: Node) -> Placement:
        """Where node n goes: a kernel, a view step or an extern step."""
        return OPINFO[n.op].placement

    def why_not(self, fuser: _Fuser, gs: list[Group], n: Node,
                domain: tuple[int, ...]) -> str | None:
        """None when n may join the union of `gs` (whose joint domain with n would be
        `domain`: shapes and cycles are already checked), else why not."""
        return None

    def tile_axis(self, fuser: _Fuser, g: Group, members: set[int]) -> int | None:
        """The axis kernel group g is split along (None: one block); `members`: ids of
        its nodes."""
        return None

    def may_recompute(self, fuser: _Fuser, g: Group, n: Node) -> bool:
        """Whether kernel group g may compute elementwise node n of another group
        rather than load it (ir/passes/recompute.py); n lies in g's domain."""
        return self.why_not(fuser, [g], n, g.domain) is None


class _Fuser:
    def __init__(self, graph: Graph, rules: FusionRules):
        self.graph = graph
        self.rules = rules
        self.index = {id(n): i for i, n in enumerate(graph.nodes)}
        self.groups: dict[int, Group] = {}
        self.parent: dict[int, int] = {}
        self.group_of: dict[int, int] = {}
        self.notes: list[str] = []

    # -- union-find over groups ------------------------------------------------
    def find(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def group(self, n: Node) -> Group | None:
        gid = self.group_of.get(id(n))
        return None if gid is None else self.groups[self.find(gid)]

    def new(self, kind: GroupKind, n: Node) -> Group:
        g = Group(len(self.parent), kind, [n])
        self.groups[g.id] = g
        self.parent[g.id] = g.id
        if kind is GroupKind.KERNEL:
            g.domain = _extent(n)
            if n.op in REDUCE:
                g.reduce_axes = frozenset(n.arg)
            if _computed(n):
                g.shapes.add(n.shape)
        self.add_deps(g, n)
        self.group_of[id(n)] = g.id
        return g

    def add_deps(self, g: Group, n: Node) -> None:
        for i in n.inputs:
            s = self.group(i)
            if s is not None and s.id != g.id:
                g.deps.add(s.id)

    def depends(self, a: Group, b: Group) -> bool:
        """Whether group a reads (transitively) from group b."""
        stack, seen = [a.id], {a.id}
        while stack:
            for d in self.groups[stack.pop()].deps:
                d = self.find(d)
                if d == b.id:
                    return True
                if d not in seen:
                    seen.add(d)
                    stack.append(d)
        return False

    def name(self, n: Node) -> str:
        return f"%{self.index[id(n)]} {n.op.name.lower()}"

    # -- joining -----------------------------------------------------------------
    def why_not(self, gs: list[Group], n: Node) -> str | None:
        """None when n can join the union of gs, else the reason it cannot."""
        extent = _extent(n)
        domain = extent
        for g in gs:
            if not _compatible(g.domain, domain):
                return f"shape {list(extent)} does not fit @{g.id}'s domain {list(g.domain)}"
            domain = tuple(max(x, y) for x, y in zip(domain, g.domain))
        for a in gs:
            for b in gs:
                if a is not b and self.depends(a, b):
                    return f"@{a.id} reads @{b.id}"
        members = {g.id for g in gs}
        for i in n.inputs:
            s = self.group(i)
            if s is not None and s.id not in members and any(self.depends(s, g) for g in gs):
                return f"{self.name(i)} (in @{s.id}) depends on the kernel: fusing makes a cycle"
        return self.rules.why_not(self, gs, n, domain)

    def join(self, gs: list[Group], n: Node) -> Group:
        g = gs[0]
        for other in gs[1:]:
            g.nodes += other.nodes
            g.shapes |= other.shapes
            g.deps |= other.deps
            g.reduce_axes |= other.reduce_axes
            g.domain = tuple(max(x, y) for x, y in zip(g.domain, other.domain))
            self.parent[other.id] = g.id
            del self.groups[other.id]
        g.nodes.append(n)
        g.domain = tuple(max(x, y) for x, y in zip(g.domain, _extent(n)))
        if _computed(n):
            g.shapes.add(n.shape)
        if n.op in REDUCE:
            g.reduce_axes |= frozenset(n.arg)
        self.group_of[id(n)] = g.id
        self.add_deps(g, n)
        g.deps = {d for d in g.deps if self.find(d) != g.id}
        return g

    def place_kernel_node(self, n: Node) -> None:
        cands: list[Group] = []
        if n.op is not Op.MATMUL:
            for i in n.inputs:
                g = self.group(i)
                if g is not None and g.kind is GroupKind.KERNEL and g not in cands:
                    cands.append(g)
        if n.op is Op.EXPAND and not cands:
            self.new(GroupKind.VIEW, n)
            return
        if len(cands) > 1 and self.why_not(cands, n) is None:
            self.join(cands, n)
            return
        for g in cands:
            reason = self.why_not([g], n)
            if reason is None:
                self.join([g], n)
                return
            self.notes.append(f"{self.name(n)} not fused into @{g.id}: {reason}")
        if n.op is Op.EXPAND:
            self.new(GroupKind.VIEW, n)
        else:
            self.new(GroupKind.KERNEL, n)

    def run(self) -> Fusion:
        for n in self.graph.nodes:
            placement = self.rules.placement(n)
            if placement is Placement.KERNEL:
                self.place_kernel_node(n)
            elif placement is Placement.VIEW:
                self.new(GroupKind.VIEW, n)
            elif placement is Placement.EXTERN:
                self.new(GroupKind.EXTERN, n)
        return self.finish()

    def contiguous(self, n: Node) -> bool:
        """Whether n's stored value is a C-contiguous array (False: unknown)."""
        if n.op is Op.BUFFER:
            return True
        g = self.group(n)
        if g is not None and g.kind is GroupKind.KERNEL:
            return True
        if n.op is Op.AS_STRIDED:
            return n.arg.is_contiguous() and self.contiguous(n.inputs[0])
        if n.op is Op.RESHAPE:
            return self.contiguous(n.inputs[0])
        return False

    def finish(self) -> Fusion:
        users: dict[int, list[Node]] = {}
        for n in self.graph.nodes:
            for i in n.inputs:
                users.setdefault(id(i), []).append(n)
        outs = {id(o) for o in self.graph.outputs}
        groups = sorted(self.groups.values(), key=lambda g: min(self.index[id(n)]
                                                                 for n in g.nodes))
        group_of = {}
        computing: dict[int, list[Group]] = {}  # id(node) -> the groups computing it
        for g in groups:
            g.nodes.sort(key=lambda n: self.index[id(n)])
            g.members = {id(n) for n in g.nodes}
            for n in g.nodes:
                group_of[id(n)] = g
                computing[id(n)] = [g]

        def add(g: Group, n: Node) -> None:
            g.nodes.append(n)
            g.members.add(id(n))
            g.recomputed.add(id(n))
            g.shapes.add(n.shape)
            computing[id(n)].append(g)

        def groups_of(n: Node) -> list[Group]:
            return computing.get(id(n), [])

        for g in groups:
            if g.kind is GroupKind.KERNEL:
                g.nodes.sort(key=lambda n: self.index[id(n)])
                recompute_in(g, groups_of, users, outs, self.accepts, add)
        for g in groups:
            g.nodes.sort(key=lambda n: self.index[id(n)])
            g.outputs = [n for n in g.nodes if id(n) not in g.recomputed and (
                id(n) in outs or read_outside(n, g, users, groups_of))]
        for g in groups:
            if g.kind is GroupKind.KERNEL and any(g is not h for n in g.nodes
                                                  for h in computing[id(n)]):
                _drop_unused(g, users, computing)
        groups = [g for g in groups if g.nodes]
        for g in groups:
            members = g.members
            seen: set[int] = set()
            for n in g.nodes:
                for i in n.inputs:
                    if id(i) not in members and i.op is not Op.CONST and id(i) not in seen:
                        seen.add(id(i))
                        g.loads.append(i)
            # NOTE: read again from the loads: a recomputed value's group is no longer
            # read, and the values its recipe reads are
            g.deps = {group_of[id(i)].id for i in g.loads if id(i) in group_of}
            if g.kind is GroupKind.KERNEL:
                g.tile_axis = self.rules.tile_axis(self, g, members)
        return Fusion(self.graph, groups, group_of, self.renumber(groups))

    def accepts(self, g: Group, n: Node) -> bool:
        """Whether kernel group g may compute node n too (`recompute_in`): n lies in g's
        domain and the back end lets it join."""
        return (g.kind is GroupKind.KERNEL and len(n.shape) == len(g.domain)
                and all(x in (d, 1) for x, d in zip(n.shape, g.domain))
                and self.rules.may_recompute(self, g, n))

    def renumber(self, groups: list[Group]) -> list[str]:
        """Number the groups 0, 1, ... in graph order (their names: see `Group.name`);
        returns the notes with the groups they name under those names."""
        final = {g.id: g for g in groups}  # ids while fusing -> the groups left
        position = {g.id: i for i, g in enumerate(groups)}
        for g in groups:
            g.deps = {position[self.find(d)] for d in g.deps}
        for i, g in enumerate(groups):
            g.id = i
        def named(m: re.Match) -> str:
            g = final.get(self.find(int(m.group(1))))
            return "a kernel recomputed where it is read" if g is None else g.name

        return [_DRAFT.sub(named, note) for note in self.notes]


def _drop_unused(g: Group, users: dict[int, list[Node]], computing: dict) -> None:
    """Take out of kernel g the values it neither stores nor reads itself: those that
    other groups recompute (`recompute_in`), latest first."""
    stored = {id(n) for n in g.outputs}
    for n in reversed(list(g.nodes)):
        if id(n) not in stored and not any(id(u) in g.members
                                           for u in users.get(id(n), ())):
            g.nodes.remove(n)
            g.members.discard(id(n))
            g.recomputed.discard(id(n))
            computing[id(n)].remove(g)


def fuse(graph: Graph, backend: FusionRules | None = None) -> Fusion:
    """Group `graph`'s nodes into kernels as `backend` decides (None: the base rules; see
    the module docstring)."""
    return _Fuser(graph, backend or FusionRules()).run()
