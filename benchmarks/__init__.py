"""ember's kernel benchmark suite.

Run it as ``python -m benchmarks`` (or the ``ember-bench`` script). It measures the
machine's limits (memory copy bandwidth, the best library matmul), then runs every
case of the registry (`benchmarks.cases.CASES`) with every contender available on
the machine (ember lazy, ember compiled per back end, ember eager, NumPy eager,
torch eager, torch.compile), interleaved in one process, after a warm-up, and
reports medians, spreads, achieved bandwidth or FLOP rate, the share of the
machine's limit and each contender's time relative to ember's.

Layout, in the order a run goes through it:

- `limits`: the machine's limits, measured in the benchmark process.
- `cases`: the registry, one table of case definitions (kernels); `loops` holds the
  training and overhead cases' code.
- `contenders`: how each tool runs a case's code, forces its result and hands it back.
- `runner`: check once against NumPy, warm up, time interleaved repeats.
- `report`: the table, the verdicts, the JSON file and the optional plot.
- `__main__`: the command line.
"""

import os as _os
import sys as _sys

__all__ = ["main"]

# NOTE: OpenBLAS's worker threads spin for about 2^28 cycles after each BLAS call. On a
# machine with few cores that spinning thread shares a core with torch's OpenMP worker,
# and every parallel torch op then waits for a scheduler time slice: a 256x256 sum took
# 6 ms instead of 8 us on a 2-core machine. 2^4 cycles keeps NumPy's matmul as fast and
# the contenders out of each other's way. It only works if NumPy is not imported yet;
# `__main__` records whether it was.
OPENBLAS_TIMEOUT_SET = "numpy" not in _sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in _os.environ
if OPENBLAS_TIMEOUT_SET:
    _os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"


def main(argv: list[str] | None = None) -> int:
    """Run the suite with command-line arguments `argv`; returns the exit code."""
    from .__main__ import main as _main

    return _main(argv)
