"""ember's intermediate representation: dtypes, views, ops, nodes and graphs.

Owns: `dtypes` (DType and promotion), `view` (View), `ops` (Op and its groups),
`node` (the hash-consed Node), `graph` (Graph, its text form, networkx export)
and `passes/` (graph-to-graph transformations). Imports nothing else of ember's.
"""

from . import dtypes
from .dtypes import DType
from .graph import Graph, toposort
from .node import Node, const, node
from .ops import Op
from .view import View

__all__ = ["dtypes", "DType", "Graph", "toposort", "Node", "const", "node", "Op", "View"]
