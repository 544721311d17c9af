"""The compiler's pass pipeline, in one readable list.

    graph ─► simplify ─► eliminate_dead ─► fuse ─► schedule ─► Schedule

`lower(graph)` runs it; with `check=True` (on in tests) the verifier runs
after every graph-to-graph pass and checks that the outputs kept their dtypes
and shapes. `fold` is the constant evaluator simplify uses (the runtime backs
it with the reference interpreter).
"""

from __future__ import annotations

from functools import partial

from ..graph import Graph
from .fusion import TILE_ELEMS, fuse
from .schedule import Schedule, schedule
from .simplify import Fold, eliminate_dead, simplify
from .verify import check_same_outputs, verify

__all__ = ["graph_passes", "lower"]


def graph_passes(fold: Fold | None = None) -> list:
    """The graph-to-graph passes, in order: (name, Graph -> Graph)."""
    return [
        ("simplify", partial(simplify, fold=fold)),
        ("eliminate_dead", eliminate_dead),
    ]


def lower(graph: Graph, *, fold: Fold | None = None, tile_elems: int = TILE_ELEMS,
          min_slot_bytes: int = 1 << 16, check: bool = False) -> Schedule:
    """Run the pipeline: simplified, fused and scheduled `graph`."""
    if check:
        verify(graph, "input")
    for name, run_pass in graph_passes(fold):
        new = run_pass(graph)
        if check:
            verify(new, name)
            check_same_outputs(graph, new, name)
        graph = new
    return schedule(fuse(graph, tile_elems), min_slot_bytes)
