"""`run`: evaluate output nodes to arrays, on the path the options choose.

Every realisation and every eager op comes through here; counters in `stats`
let tests and `EMBER_DEBUG=1` see how often graphs ran and how big they were.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import numpy as np

from ..ir.node import Node
from .config import options
from .interpreter import evaluate

__all__ = ["run", "stats"]

stats: Counter = Counter()


def run(outputs: list[Node]) -> list[np.ndarray]:
    """The values of `outputs` (arrays of their shapes and storage dtypes)."""
    stats["runs"] += 1
    if options.debug:
        start = time.perf_counter()
    values = evaluate(outputs)
    if options.debug:
        ms = (time.perf_counter() - start) * 1e3
        print(f"[ember] ran {len(outputs)} output(s) in {ms:.3f} ms", file=sys.stderr)
    return values
