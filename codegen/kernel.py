"""The kernel description: what both back ends (NumPy now, Triton next) consume.

A `Program` is a straight-line list of `Step`s over numbered `Value`s (arrays
of a dtype and shape). A step is

* `kernel`: a `Kernel`, SSA statements (`Stmt`) over one iteration domain that
  read `loads` (program values) and write `stores`; `tile_axis` says along which
  axis the domain may be split into independent tiles (None: one block).
  Operands are `Ref`s: a statement's result, a load, or a literal constant.
  Statements use the IR's Ops with the IR's arg conventions; EXPAND inside a
  kernel is a broadcast of a value that has size 1 on the expanded axes, and a
  MATMUL is computed whole before the tiles (its epilogue then runs per tile);
* `view`: a movement op on one value (strided view; AS_STRIDED args are Views,
  the form a pointer-arithmetic back end needs);
* `extern`: one op run as a library call (TAKE, SCATTER, ..., WRITE, RAND,
  ARANGE), arg as in the IR except RAND, whose arg is ("param", j, stream): the
  seed and sequence number are the run's j-th runtime parameter;
* `const`: a constant materialised as an array; a CONST whose arg is a `Param` is
  the run's j-th runtime parameter (a Python number), read by kernels as a load.

`Alloc`s say where each stored value lives: a fresh array (outputs, small
intermediates), a reused slot of the memory plan, or the flat output buffer
under a reshaped view (so an output is written in place and returned as is).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..ir import dtypes as dt
from ..ir.node import Node, Param
from ..ir.ops import Op
from ..ir.passes.fusion import GroupKind
from ..ir.passes.schedule import Schedule

__all__ = ["Alloc", "AllocKind", "Kernel", "Program", "Ref", "RefKind", "Step", "StepKind",
           "Stmt", "Value", "build_program"]


@dataclass(frozen=True)
class Value:
    id: int
    dtype: dt.DType
    shape: tuple[int, ...]


class RefKind(StrEnum):
    """What a statement's operand is."""

    LOCAL = "local"  # a statement's result (index: its id)
    LOAD = "load"    # a program value the kernel reads (index: its position in loads)
    CONST = "const"  # a literal (index: its Python value)


class StepKind(StrEnum):
    """What a step of a program is (see the module docstring)."""

    KERNEL = "kernel"
    VIEW = "view"
    EXTERN = "extern"
    CONST = "const"


class AllocKind(StrEnum):
    """Where a stored value lives."""

    FRESH = "fresh"  # an array of its own
    SLOT = "slot"    # a reused slot of the memory plan
    UNDER = "under"  # under a reshaped output's flat buffer (`of`: the output)
    BASE = "base"    # an output allocated early, as the base of such a value


@dataclass(frozen=True)
class Ref:
    kind: RefKind
    index: object  # int, or the constant's Python value
    dtype: dt.DType
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Stmt:
    id: int
    op: Op
    srcs: tuple[Ref, ...]
    arg: object
    dtype: dt.DType
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Kernel:
    name: str
    domain: tuple[int, ...]
    tile_axis: int | None
    loads: tuple[int, ...]  # value ids
    body: tuple[Stmt, ...]
    stores: tuple[tuple[int, int], ...]  # (statement id, value id)

    @property
    def numel(self) -> int:
        n = 1
        for s in self.domain:
            n *= s
        return n


@dataclass(frozen=True)
class Step:
    kind: StepKind
    out: int  # value id (-1 for kernels: see Kernel.stores)
    op: Op | None = None
    srcs: tuple[int, ...] = ()
    arg: object = None
    kernel: Kernel | None = None


@dataclass(frozen=True)
class Alloc:
    kind: AllocKind
    slot: int = -1
    of: int = -1


@dataclass(frozen=True)
class Program:
    values: tuple[Value, ...]
    inputs: tuple[tuple[int, int], ...]  # (input position, value id) for the inputs read
    steps: tuple[Step, ...]
    outputs: tuple[int, ...]
    allocs: dict  # value id -> Alloc, for values kernels store
    slot_bytes: tuple[int, ...]
    peak_bytes: int

    @property
    def kernels(self) -> list[Kernel]:
        return [s.kernel for s in self.steps if s.kind is StepKind.KERNEL]


def build_program(plan: Schedule) -> Program:
    """The kernel description of a scheduled graph."""
    values: list[Value] = []
    vid: dict[int, int] = {}

    def value(n: Node) -> int:
        v = vid.get(id(n))
        if v is None:
            v = vid[id(n)] = len(values)
            values.append(Value(v, n.dtype, n.shape))
        return v

    inputs = []
    steps: list[Step] = []
    graph = plan.graph
    for n in graph.nodes:
        if n.op is Op.BUFFER:
            inputs.append((-1 - n.arg, value(n)))

    def operand(n: Node) -> int:
        if n.op is Op.CONST and id(n) not in vid:
            steps.append(Step(StepKind.CONST, value(n), Op.CONST, (), n.arg))
        return value(n)

    for g in plan.steps:
        if g.kind is not GroupKind.KERNEL:
            n = g.nodes[0]
            srcs = tuple(operand(i) for i in n.inputs)
            steps.append(Step(StepKind(g.kind), value(n), n.op, srcs, n.arg))
            continue
        loads = [operand(i) for i in g.loads]
        load_index = {id(i): j for j, i in enumerate(g.loads)}
        local: dict[int, int] = {}
        body = []
        for n in g.nodes:
            srcs = []
            for i in n.inputs:
                if id(i) in local:
                    srcs.append(Ref(RefKind.LOCAL, local[id(i)], i.dtype, i.shape))
                elif i.op is Op.CONST and type(i.arg) is not Param:
                    srcs.append(Ref(RefKind.CONST, i.arg, i.dtype, i.shape))
                else:
                    if id(i) not in load_index:  # a runtime parameter: read as an input
                        load_index[id(i)] = len(loads)
                        loads.append(operand(i))
                    srcs.append(Ref(RefKind.LOAD, load_index[id(i)], i.dtype, i.shape))
            local[id(n)] = len(body)
            body.append(Stmt(len(body), n.op, tuple(srcs), n.arg, n.dtype, n.shape))
        stores = tuple((local[id(n)], value(n)) for n in g.outputs)
        kernel = Kernel(g.name, g.domain, g.tile_axis, tuple(loads), tuple(body), stores)
        steps.append(Step(StepKind.KERNEL, -1, kernel=kernel))
    outputs = tuple(operand(o) for o in graph.outputs)

    allocs = {}
    out_ids = set(outputs)
    for n_id, slot in plan.slots.items():
        allocs[vid[n_id]] = Alloc(AllocKind.SLOT, slot)
    for s in steps:
        if s.kind is StepKind.VIEW and s.op is Op.RESHAPE and s.out in out_ids:
            src = s.srcs[0]
            if src not in allocs and src not in out_ids and _stored(steps, src):
                allocs[src] = Alloc(AllocKind.UNDER, of=s.out)
                allocs[s.out] = Alloc(AllocKind.BASE)
    return Program(tuple(values), tuple(inputs), tuple(steps), outputs, allocs,
                   tuple(plan.slot_bytes), plan.peak_bytes)


def _stored(steps, v: int) -> bool:
    return any(s.kind is StepKind.KERNEL and any(val == v for _, val in s.kernel.stores)
               for s in steps)
