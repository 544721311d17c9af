"""Back ends: one object per back end owning what differs between them.

A `Backend` is the fusion pass's `FusionRules` (where an op goes, whether a node
may join a kernel and why not, along which axis a kernel is tiled) plus its code
generator (`emit(prog) -> (source, notes)`) and its extern table (the ops it runs
as host steps). The pipeline takes one (`lower(graph, backend=...)`); the runtime
picks it by name (`backend_named`), and keys its programs by it.

* `NumpyBackend`: NumPy's measured choices (codegen/numpy_policy.py: a large
  kernel keeps an axis to tile, `TILE_ELEMS` a tile) and codegen/numpy_gen.py.
* `TritonBackend`: one `@triton.jit` kernel per fused kernel (codegen/triton_gen.py).
  It refuses what one Triton kernel cannot compute: reductions over different sets
  of axes, a reduction (or a second matmul) in a matmul's kernel (a column
  reduction of a matmul's output needs a split or atomics on a GPU), and a row
  read again after its reduction when the row is longer than one block. RAND is a
  kernel op there: Philox runs inside the kernel (the same numbers as the CPU's).

NOTE: a back end that cannot run here (Triton without a GPU or TRITON_INTERPRET=1)
is refused by the runtime before anything is compiled (runtime/triton_launch.py's
`available`), never replaced by another.
"""

from __future__ import annotations

from ..ir.node import Node
from ..ir.ops import OPINFO, REDUCE, Op, Placement
from ..ir.passes.fusion import FusionRules, Group
from . import numpy_gen, triton_gen
from .kernel import Program
from .numpy_policy import TILE_ELEMS, NumpyRules

__all__ = ["BACKENDS", "Backend", "NumpyBackend", "TritonBackend", "backend_named"]


class Backend(FusionRules):
    """A back end: fusion rules, an extern table and a code generator."""

    name = "backend"

    @property
    def extern_ops(self) -> frozenset:
        """The ops this back end runs as host steps of their own."""
        return frozenset(op for op, info in OPINFO.items()
                         if info.placement is Placement.EXTERN and self._places(op)
                         is Placement.EXTERN)

    def _places(self, op: Op) -> Placement:
        return OPINFO[op].placement

    def placement(self, n: Node) -> Placement:
        return self._places(n.op)

    def emit(self, prog: Program, nodes=None) -> tuple[str, list[str]]:
        """(module source defining `program(inputs, params)`, notes for the report);
        `nodes`: each kernel's graph node numbers by kernel name, for source comments."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class NumpyBackend(NumpyRules, Backend):
    """NumPy source, tiles of `tile_elems` elements run on a small thread pool.

    `any_size`: the source serves every size of a dynamic dimension (see
    `numpy_gen.emit`)."""

    name = "numpy"

    def __init__(self, tile_elems: int = TILE_ELEMS):
        NumpyRules.__init__(self, tile_elems)
        self.any_size = False

    def emit(self, prog: Program, nodes=None) -> tuple[str, list[str]]:
        return numpy_gen.emit(prog, self.tile_elems, self.any_size), []


class TritonBackend(Backend):
    """Triton kernels (runtime/triton_launch.py loads and launches them); `device`: the
    program's values live in device memory (the "cuda" device), not NumPy's."""

    name = "triton"

    def __init__(self, device: bool = False):
        self.device = device

    def _places(self, op: Op) -> Placement:
        # NOTE: Philox runs inside Triton kernels (triton_gen's `_Body.rand`): the
        # same numbers as the CPU's, from the same counter layout
        return Placement.KERNEL if op is Op.RAND else OPINFO[op].placement

    def why_not(self, fuser, gs: list[Group], n: Node, domain) -> str | None:
        sets = {g.reduce_axes for g in gs if g.reduce_axes}
        if n.op in REDUCE:
            sets.add(frozenset(n.arg))
        if len(sets) > 1:
            return ("reductions over different axes "
                    f"{sorted(sorted(s) for s in sets)} in one kernel")
        matmuls = [g for g in gs if any(m.op is Op.MATMUL for m in g.nodes)]
        if matmuls and (len(matmuls) > 1 or sets):
            return ("a reduction or another matmul in a matmul's kernel (its columns are "
                    "split between programs: that needs a split or atomics on a GPU)")
        if sets:
            axes = sets.pop()
            cols = 1
            for a in axes:
                cols *= domain[a]
            if (cols > triton_gen.PERSISTENT_MAX and n.op not in REDUCE
                    and all(n.shape[a] == domain[a] for a in axes)
                    and _after_reduction(fuser, gs, n)):
                return (f"a row of {cols} elements read again after its reduction is "
                        "too long for one block")
        return None

    def emit(self, prog: Program, nodes=None) -> tuple[str, list[str]]:
        return triton_gen.emit(prog, nodes, self.device)


def _after_reduction(fuser, gs: list[Group], n: Node) -> bool:
    """Whether n is computed, within the union of gs, from a reduction's result."""
    ids = {g.id for g in gs}
    seen: set[int] = set()
    stack = list(n.inputs)
    while stack:
        x = stack.pop()
        g = fuser.group(x)
        if id(x) in seen or g is None or g.id not in ids:
            continue
        seen.add(id(x))
        if x.op in REDUCE:
            return True
        stack.extend(x.inputs)
    return False


BACKENDS = {"numpy": NumpyBackend, "triton": TritonBackend, "cuda": TritonBackend}


def backend_named(name: str, tile_elems: int = TILE_ELEMS) -> Backend:
    """The back end called `name` ("numpy", "triton", or "cuda": Triton over device
    memory); NumPy's tiles of `tile_elems`."""
    if name == "numpy":
        return NumpyBackend(tile_elems)
    if name in ("triton", "cuda"):
        return TritonBackend(device=name == "cuda")
    raise ValueError(f"unknown backend {name!r}; expected 'numpy', 'triton' or 'cuda'")
