"""`run`: evaluate output nodes to arrays, on the path the options choose.

Every realisation and every eager op comes through here. By default a graph
runs compiled (runtime/compiled.py: passes, fusion, NumPy kernels, cached);
eager mode (the calling thread's, runtime/context.py) and
`EMBER_BACKEND=interpreter` run the reference interpreter node by node.
Counters in `counts` let tests and `EMBER_DEBUG=1` see how often graphs ran;
the compiled-graph cache has its own (`ember.runtime.cache.stats()`).
"""

from __future__ import annotations

import time

from ..ir.node import Node
from .config import counts, debug, options
from .context import current
from .interpreter import evaluate_on

__all__ = ["counts", "run"]


_COMPILED: list = []


def _run_compiled():
    """compiled.run_compiled (imported on first use: the compiler is not needed before)."""
    if not _COMPILED:
        from .compiled import run_compiled
        _COMPILED.append(run_compiled)
    return _COMPILED[0]


def run(outputs: list[Node], device: str = "cpu") -> list:
    """The values of `outputs` (arrays of their shapes and storage dtypes) in the memory
    of `device`: NumPy arrays on the CPU, device tensors on a GPU (runtime/devices.py).

    The reference interpreter computes in host memory: on a GPU, eager mode and
    `EMBER_BACKEND=interpreter` copy the inputs out and the results in."""
    counts["runs"] += 1
    if options.debug:
        start = time.perf_counter()
    if not current().eager and options.backend not in ("interpreter", "reference"):
        values = _run_compiled()(outputs, device)
    else:
        values = evaluate_on(outputs, device)
    if options.debug:
        ms = (time.perf_counter() - start) * 1e3
        from . import cache
        c = cache.stats()
        debug(f"run {counts['runs']}: {len(outputs)} output(s) in {ms:.3f} ms "
              f"(cache: {c.hits} hits, {c.misses} misses, {c.compiles} compiles)")
    return values
