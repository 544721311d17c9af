"""ember's kernel benchmark suite.

Run it as ``python -m ember.benchmarks`` (or the ``ember-bench`` script). It measures the
machine's limits (memory copy bandwidth, the best library matmul), then runs every
case of the registry (`ember.benchmarks.cases.CASES`) with every contender available on
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

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the suite with command-line arguments `argv`; returns the exit code."""
    from .__main__ import main as _main
    return _main(argv)
