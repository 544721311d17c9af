"""`Graph`: the nodes that produce a list of outputs, in dependency order.

A Graph is a value: its outputs fix everything below them, since Nodes are
immutable. The text form prints one line per node (`%7 = mul %3, %5 : f32[3,5]`)
and is what `EMBER_DEBUG=2` shows; `to_networkx` exports a DiGraph for analysis
and drawing.
"""

from __future__ import annotations

from collections.abc import Iterable

from .node import Node
from .ops import Op

__all__ = ["Graph", "toposort"]


def toposort(outputs: Iterable[Node], stop=None, inputs=None) -> list[Node]:
    """Every node the outputs depend on, each after its inputs (iterative DFS).

    `stop(node) -> bool` marks nodes whose inputs are not visited (they still appear).
    `inputs(node)` replaces `node.inputs`, so any DAG can be ordered (autograd's
    records are).
    """
    order: list[Node] = []
    seen: set[int] = set()
    for out in outputs:
        if id(out) in seen:
            continue
        stack = [(out, False)]
        while stack:
            n, expanded = stack.pop()
            if expanded:
                order.append(n)
                continue
            if id(n) in seen:
                continue
            seen.add(id(n))
            stack.append((n, True))
            if stop is None or not stop(n):
                for i in reversed(n.inputs if inputs is None else inputs(n)):
                    if id(i) not in seen:
                        stack.append((i, False))
    return order


def _fmt_arg(n: Node) -> str:
    a = n.arg
    if a is None:
        return ""
    if n.op is Op.AS_STRIDED or n.op is Op.WRITE:
        return f" shape={list(a.shape)} strides={list(a.strides)} offset={a.offset}"
    if isinstance(a, tuple):
        return " " + repr(list(a)).replace(" ", "")
    return f" {a!r}"


class Graph:
    """The computation behind `outputs`."""

    def __init__(self, outputs: Iterable[Node]):
        self.outputs: tuple[Node, ...] = tuple(outputs)
        self._nodes: list[Node] | None = None

    @property
    def nodes(self) -> list[Node]:
        if self._nodes is None:
            self._nodes = toposort(self.outputs)
        return self._nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def __str__(self) -> str:
        ids = {id(n): i for i, n in enumerate(self.nodes)}
        lines = []
        for i, n in enumerate(self.nodes):
            ins = ", ".join(f"%{ids[id(x)]}" for x in n.inputs)
            ins = (" " + ins) if ins else ""
            shape = ",".join(map(str, n.shape))
            lines.append(f"%{i} = {n.op.name.lower()}{ins}{_fmt_arg(n)} : "
                         f"{n.dtype.short}[{shape}]")
        outs = ", ".join(f"%{ids[id(o)]}" for o in self.outputs)
        lines.append(f"return {outs}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Graph {len(self.nodes)} nodes, {len(self.outputs)} outputs>"

    def to_networkx(self):
        """A networkx DiGraph: one vertex per node (attributes op, dtype, shape, arg)."""
        import networkx as nx

        g = nx.DiGraph()
        ids = {id(n): i for i, n in enumerate(self.nodes)}
        for i, n in enumerate(self.nodes):
            g.add_node(i, op=n.op.name, dtype=n.dtype.name, shape=n.shape, arg=repr(n.arg),
                       output=n in self.outputs)
            for x in n.inputs:
                g.add_edge(ids[id(x)], i)
        return g
