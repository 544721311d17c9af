"""`verify`: check a graph's invariants; the pipeline runs it between passes in tests.

It checks that the node order is topological (so the graph is acyclic), that
every non-source node's dtype and shape are what the inference rules give for
its inputs, and that every AS_STRIDED / WRITE view stays inside its flat input.
`check_same_outputs` checks that a pass kept the outputs' dtypes and shapes.
"""

from __future__ import annotations

from ..graph import Graph
from ..node import infer
from ..ops import SOURCE, Op

__all__ = ["GraphError", "check_same_outputs", "verify"]


class GraphError(AssertionError):
    """A pass produced a malformed graph."""


def verify(graph: Graph, where: str = "") -> Graph:
    """`graph` unchanged, or GraphError naming the first broken node."""
    seen: set[int] = set()
    for n in graph.nodes:
        for i in n.inputs:
            if id(i) not in seen:
                raise GraphError(f"{where}: {n!r} reads {i!r} before it is computed (cycle?)")
        seen.add(id(n))
        if n.op in SOURCE:
            continue
        dtype, shape = infer(n.op, n.inputs, n.arg)
        if (n.op is not Op.CAST and dtype is not n.dtype) or tuple(shape) != n.shape:
            raise GraphError(f"{where}: {n!r} should be {dtype.short}{list(shape)} by the "
                             f"rules for {n.op.name}")
        if n.op in (Op.AS_STRIDED, Op.WRITE):
            lo, hi = n.arg.span()
            # NOTE: an empty view reads nothing, at any offset (PyTorch's narrow(0, n, 0)
            # of a strided view can start past the end of its storage)
            if n.inputs[0].ndim != 1 or (n.arg.numel and (lo < 0 or hi > n.inputs[0].numel)):
                raise GraphError(f"{where}: {n!r} reads [{lo}, {hi}) of a "
                                 f"{n.inputs[0].numel}-element flat input")
    return graph


def check_same_outputs(before: Graph, after: Graph, where: str = "") -> None:
    if len(before.outputs) != len(after.outputs):
        raise GraphError(f"{where}: {len(before.outputs)} outputs became {len(after.outputs)}")
    for a, b in zip(before.outputs, after.outputs):
        if a.dtype is not b.dtype or a.shape != b.shape:
            raise GraphError(f"{where}: output {a!r} became {b!r}")
