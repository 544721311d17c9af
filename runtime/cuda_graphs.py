"""Replaying a program over GPU memory as a CUDA graph, where that measures faster.

A program of many small kernels spends most of a call launching them: one CUDA graph
launch replaces them all. A graph replays fixed memory, so the program's inputs are
copied into the graph's own input tensors (skipped where a call hands the very tensor
the last one did, which the graph holds so its memory cannot be reused: ember's buffers
are never written after they are made) and its
outputs out of the graph's (each call's outputs are buffers of their own). Whether
that pays is measured, not guessed: after `WARMUP` calls (the kernels compiled) the
program is timed `TRIALS` calls as it is and `TRIALS` calls as a graph, and the faster
is kept for good.

Programs that take runtime parameters (random seeds, Python numbers: bound per call as
kernel arguments, which a graph would freeze), that run a step on the host (a copy to
or from the host cannot be captured), or that have fewer than `MIN_KERNELS` kernels
run as they are. `EMBER_CUDA_GRAPHS=0` turns graphs off. Only real GPUs capture: the
emulated device (runtime/devices.py) never does.
"""

from __future__ import annotations

import time

from . import devices
from .config import debug, options, which_run

__all__ = ["MIN_KERNELS", "TRIALS", "WARMUP", "GraphedProgram", "graphed"]

MIN_KERNELS = 3
WARMUP = 3
TRIALS = 5


def graphed(fn, source: str):
    """`fn`, the `program(inputs, params)` of a program over device memory generated as
    `source`, as a `GraphedProgram` where a CUDA graph may replay it; else `fn` itself."""
    kernels = source.count(" = Launch(")
    if (kernels < MIN_KERNELS or "_device_value(" in source or not options.cuda_graphs
            or devices.emulated() or not devices.available()):
        return fn  # NOTE: `_device_value` marks a host step: a copy no graph can hold
    return GraphedProgram(fn)


class GraphedProgram:
    """A program that becomes a CUDA graph once that measured faster (see the module)."""

    __slots__ = ("fn", "calls", "graph", "static_in", "static_out", "last", "settled")

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0
        self.graph = None
        self.static_in: list = []
        self.static_out: list = []
        self.last: list = []   # the input tensors whose values the graph's copies hold
        self.settled = False   # True: decided (graph or not), no more measuring

    def __call__(self, inputs, params):
        if self.graph is not None:
            return self._replay(inputs)
        if self.settled or params:
            return self.fn(inputs, params)
        self.calls += 1
        if self.calls <= WARMUP:
            return self.fn(inputs, params)
        self.settled = True
        try:
            return self._decide(inputs)
        except Exception as e:  # noqa: BLE001 - a program that cannot be captured runs as is
            self.graph = None
            if options.debug:
                debug(f"{which_run()}: not a CUDA graph ({type(e).__name__}: {e})")
            return self.fn(inputs, params)

    def _decide(self, inputs):
        import torch
        sync = torch.cuda.synchronize
        sync()
        start = time.perf_counter()
        for _ in range(TRIALS):
            self.fn(inputs, [])
        sync()
        plain = time.perf_counter() - start
        self.static_in = [t.clone() for t in inputs]
        self.last = list(inputs)
        # NOTE: captured on a side stream, as torch.cuda.graph does; allocations made
        # while capturing come from the graph's private pool and stay its outputs
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static_out = list(self.fn(self.static_in, []))
        sync()
        start = time.perf_counter()
        for _ in range(TRIALS):
            graph.replay()
        sync()
        replayed = time.perf_counter() - start
        if options.debug:
            debug(f"{which_run()}: {TRIALS} calls: {plain * 1e6:.0f} us as kernels, "
                  f"{replayed * 1e6:.0f} us as a CUDA graph")
        if replayed < plain:
            self.graph = graph
            return self._replay(inputs)
        self.static_in = self.static_out = self.last = []
        return self.fn(inputs, [])

    def _replay(self, inputs):
        last = self.last
        for k, (dst, src) in enumerate(zip(self.static_in, inputs)):
            if src is not last[k]:
                dst.copy_(src)
                last[k] = src
        self.graph.replay()
        return [t.clone() for t in self.static_out]
