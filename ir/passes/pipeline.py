"""The compiler's pass pipeline, in one readable list.

    graph ─► simplify ─► eliminate_dead ─► fuse ─► schedule ─► Schedule

`passes()` is that list, of named steps; `lower(graph)` runs it. With
`check=True` (on in tests) the verifier runs after every graph-to-graph step
and checks that the outputs kept their dtypes and shapes; `log` (given one,
as EMBER_DEBUG=2 does) is told each step's name, what it made and how long it
took. `fold` is the constant evaluator simplify uses (the runtime backs it with
the reference interpreter). `backend` is what fusion asks what differs between
back ends (a `FusionRules`: codegen/backend.py's `Backend`s; None: the base rules,
which fuse whatever is compatible and tile nothing); `tile_elems`, where given, is
handed to a back end that tiles (`backend.tiled(tile_elems)`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from ..graph import Graph
from .fusion import Fusion, FusionRules, fuse
from .schedule import Schedule, schedule
from .simplify import Fold, eliminate_dead, simplify
from .verify import check_same_outputs, verify

__all__ = ["graph_passes", "lower", "passes"]

MIN_SLOT_BYTES = 1 << 16


def passes(fold: Fold | None = None, backend: FusionRules | None = None,
           min_slot_bytes: int = MIN_SLOT_BYTES) -> list[tuple[str, Callable]]:
    """The pipeline, in order: (name, step), from a Graph to a Schedule."""
    return [
        ("simplify", partial(simplify, fold=fold)),            # Graph -> Graph
        ("eliminate_dead", eliminate_dead),                    # Graph -> Graph
        ("fuse", partial(fuse, backend=backend)),              # Graph -> Fusion
        ("schedule", partial(schedule, min_slot_bytes=min_slot_bytes)),  # Fusion -> Schedule
    ]


def graph_passes(fold: Fold | None = None) -> list:
    """The graph-to-graph steps of `passes()`, in order: (name, Graph -> Graph)."""
    return passes(fold)[:2]


def summary(value) -> str:
    """What a step made, in a few words (for `log`)."""
    if isinstance(value, Graph):
        return f"{len(value)} nodes"
    if isinstance(value, Fusion):
        return f"{len(value.groups)} groups, {len(value.kernels)} kernels"
    if isinstance(value, Schedule):
        return (f"{len(value.steps)} steps, peak {value.peak_bytes} bytes in "
                f"{len(value.slot_bytes)} reused slots")
    return type(value).__name__  # pragma: no cover - every step's result is named above


def lower(graph: Graph, *, fold: Fold | None = None, backend: FusionRules | None = None,
          tile_elems: int | None = None, min_slot_bytes: int = MIN_SLOT_BYTES,
          check: bool = False, log: Callable[[str], None] | None = None) -> Schedule:
    """Run the pipeline: simplified, fused (as `backend` decides) and scheduled `graph`."""
    if tile_elems is not None and hasattr(backend, "tiled"):
        backend = backend.tiled(tile_elems)
    if check:
        verify(graph, "input")
    value = graph
    for name, step in passes(fold, backend, min_slot_bytes):
        start = time.perf_counter() if log is not None else 0.0
        new = step(value)
        if check and isinstance(new, Graph):
            verify(new, name)
            check_same_outputs(value, new, name)
        if log is not None:
            ms = (time.perf_counter() - start) * 1e3
            log(f"{name}: {summary(new)} ({ms:.2f} ms)")
        value = new
    return value
