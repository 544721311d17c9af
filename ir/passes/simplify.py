"""`simplify`: rewrite a graph into an equal, smaller one.

Every rewrite is exact: the simplified graph computes bit-for-bit what the
reference interpreter computes for the original. The rules, one table keyed by
Op (`RULES`), are

* constant folding: an elementwise op whose inputs are all constants becomes a
  constant (the value comes from the `fold` callback, which the runtime backs
  with the reference interpreter so folding can never disagree with it);
* movement ops of constants are constants of the new shape;
* a chain of movement ops over a flat leaf (an input buffer) becomes one
  AS_STRIDED with the composed View; a chain over a computed value that reads it
  in row-major order becomes that value (reshaped); reshape of reshape, permute
  of permute and expand of expand collapse; identity movements vanish;
* algebraic identities that are exact for every value: x*1, x/1, x-0, x+(-0.0)
  (x+0 for integers), x*0 for integers and bools, -(-x), where with a constant
  condition, where(c, where(d, a, y), y) with d implying c, casts to the same
  dtype and cast chains through a lossless intermediate type.

Dead code elimination is `eliminate_dead` (a Graph holds only the nodes its
outputs reach, so it rebuilds the graph); common subexpressions are shared by
hash-consing, so no pass is needed for them.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import build as b
from .. import dtypes as dt
from ..graph import Graph
from ..node import Node, const, node
from ..ops import ELEMENTWISE, Op
from ..view import View

__all__ = ["RULES", "compose_view", "eliminate_dead", "simplify"]

Fold = Callable[[Node], object]


def _is_const(n: Node, value=None) -> bool:
    """Whether n is a CONST (of exactly `value`, bit for bit, where one is given)."""
    if n.op is not Op.CONST:
        return False
    if value is None:
        return True
    return n.arg == value and repr(float(n.arg)) == repr(float(value))


def _is_leaf(n: Node) -> bool:
    """A BUFFER: row-major memory of its own, whatever shape it is read in."""
    return n.op is Op.BUFFER


# ---------------------------------------------------------------------------
# movement: compose a chain over a flat leaf into one View

def _flip(v: View, axes) -> View:
    strides = list(v.strides)
    offset = v.offset
    for a in axes:
        if v.shape[a] > 0:
            offset += (v.shape[a] - 1) * strides[a]
        strides[a] = -strides[a]
    return View(v.shape, tuple(strides), offset)


def _slice(v: View, arg) -> View:
    if any(s == 0 for s in v.shape):
        return None
    for dim, (start, stop, step) in enumerate(arg):
        v = v.slice(dim, start, stop, step)
    return v


def _as_strided(v: View, arg: View) -> View | None:
    if v.ndim != 1:
        return None
    s = v.strides[0]
    return View(arg.shape, tuple(st * s for st in arg.strides), v.offset + arg.offset * s)


_VIEW_OF = {
    Op.RESHAPE: lambda v, arg: v.reshape(arg),
    Op.PERMUTE: lambda v, arg: v.permute(arg),
    Op.EXPAND: lambda v, arg: v.expand(arg),
    Op.SLICE: _slice,
    Op.FLIP: _flip,
    Op.AS_STRIDED: _as_strided,
}


def compose_view(n: Node, any_base: bool = False) -> tuple[Node, View] | None:
    """(leaf, View of its row-major memory) equal to `n`, a chain of movement ops over
    a BUFFER leaf (with `any_base`: over the first node that is not a movement op,
    whatever it is), or None."""
    if n.op not in _VIEW_OF:
        return (n, View.contiguous(n.shape)) if any_base or _is_leaf(n) else None
    inner = compose_view(n.inputs[0], any_base)
    if inner is None:
        return None
    root, v = inner
    v = _VIEW_OF[n.op](v, n.arg)
    return None if v is None else (root, v)


def _movement(n: Node, fold: Fold | None) -> Node:
    x = n.inputs[0]
    if x.op is Op.CONST:
        return const(x.arg, n.dtype, n.shape)
    if n.shape == x.shape and n.op in (Op.RESHAPE, Op.EXPAND):
        return x
    if n.op is Op.PERMUTE and n.arg == tuple(range(n.ndim)):
        return x
    if n.op is Op.SLICE and n.shape == x.shape and all(
            start == 0 and step == 1 for start, _, step in n.arg):
        return x
    composed = compose_view(n)
    if composed is not None:
        root, view = composed
        return b.as_strided(root, view)
    chained = compose_view(n, any_base=True)
    if chained is not None:
        # a chain that reads a computed value in its own order is no step at all
        # (a transposed result read back through its transposing view)
        base, view = chained
        if view.offset == 0 and view.is_contiguous() and view.numel == base.numel:
            return b.reshape(base, n.shape)
    if n.op is Op.RESHAPE and x.op is Op.RESHAPE:
        return b.reshape(x.inputs[0], n.shape)
    if n.op is Op.PERMUTE and x.op is Op.PERMUTE:
        return b.permute(x.inputs[0], tuple(x.arg[i] for i in n.arg))
    if n.op is Op.EXPAND and x.op is Op.EXPAND:
        return node(Op.EXPAND, (x.inputs[0],), n.arg, n.dtype, n.shape)
    return n


# ---------------------------------------------------------------------------
# elementwise: constant folding and exact identities

def _fold(n: Node, fold: Fold | None) -> Node | None:
    if fold is None or not all(i.op is Op.CONST for i in n.inputs):
        return None
    try:
        value = fold(n)
    except Exception:  # noqa: BLE001 - an op that raises at run time is left to raise then
        return None
    return None if value is None else const(value, n.dtype, n.shape)


def _same(n: Node, x: Node) -> Node | None:
    return x if x.dtype is n.dtype and x.shape == n.shape else None


def _mul(n, a, c):
    if _is_const(c, 1):
        return _same(n, a)
    if _is_const(c, 0) and not n.dtype.is_floating_point:
        return const(0, n.dtype, n.shape)
    return None


def _rule_mul(n: Node) -> Node | None:
    a, c = n.inputs
    return _mul(n, a, c) or _mul(n, c, a)


def _rule_add(n: Node) -> Node | None:
    for x, c in (n.inputs, n.inputs[::-1]):
        if c.op is Op.CONST and c.arg == 0 and (
                not n.dtype.is_floating_point or repr(float(c.arg)) == "-0.0"):
            return _same(n, x)
    return None


def _rule_sub(n: Node) -> Node | None:
    a, c = n.inputs
    if c.op is Op.CONST and c.arg == 0 and (not n.dtype.is_floating_point
                                            or repr(float(c.arg)) == "0.0"):
        return _same(n, a)
    return None


def _rule_div(n: Node) -> Node | None:
    a, c = n.inputs
    return _same(n, a) if n.dtype.is_floating_point and _is_const(c, 1) else None


def _rule_neg(n: Node) -> Node | None:
    x = n.inputs[0]
    return _same(n, x.inputs[0]) if x.op is Op.NEG else None


def _rule_where(n: Node) -> Node | None:
    c, x, y = n.inputs
    if c.op is Op.CONST:
        return _same(n, x if c.arg else y)
    if x is y:
        return _same(n, x)
    if x.op is Op.WHERE and x.inputs[2] is y and _implies(x.inputs[0], c):
        # where(c, where(d, a, y), y) with d implying c is where(d, a, y): where d holds
        # both give a, elsewhere y (relu's value routed through its gradient's mask)
        return _same(n, x)
    return None


def _implies(d: Node, c: Node) -> bool:
    """Whether mask d is true only where mask c is (d is c, or d = a < b and c = a <= b)."""
    return d is c or (d.op is Op.LT and c.op is Op.LE and d.inputs == c.inputs)


# (source, intermediate) pairs where every source value is exactly representable
_WIDER = {
    dt.float64: {dt.float32, dt.float16, dt.bfloat16, dt.int32, dt.int16, dt.int8, dt.uint8,
                 dt.bool_},
    dt.float32: {dt.float16, dt.bfloat16, dt.int16, dt.int8, dt.uint8, dt.bool_},
    dt.int64: {dt.int32, dt.int16, dt.int8, dt.uint8, dt.bool_},
    dt.int32: {dt.int16, dt.int8, dt.uint8, dt.bool_},
    dt.int16: {dt.int8, dt.uint8, dt.bool_},
}


def _rule_cast(n: Node) -> Node | None:
    x = n.inputs[0]
    if x.dtype is n.dtype:
        return x
    if x.op is not Op.CAST:
        return None
    src = x.inputs[0]
    if src.dtype not in _WIDER.get(x.dtype, ()):
        return None
    if src.dtype is n.dtype:
        return src
    # NOTE: float-to-integer casts of out-of-range values differ between source
    # widths on some platforms; fold only chains that never go float -> integer.
    if src.dtype.is_floating_point and not n.dtype.is_floating_point:
        return None
    return node(Op.CAST, (src,), None, n.dtype, n.shape)


RULES: dict[Op, Callable[[Node], Node | None]] = {
    Op.MUL: _rule_mul,
    Op.ADD: _rule_add,
    Op.SUB: _rule_sub,
    Op.DIV: _rule_div,
    Op.NEG: _rule_neg,
    Op.WHERE: _rule_where,
    Op.CAST: _rule_cast,
}


def _rewrite(n: Node, fold: Fold | None) -> Node:
    for _ in range(8):
        if n.op in _VIEW_OF:
            m = _movement(n, fold)
        elif n.op in ELEMENTWISE:
            m = _fold(n, fold)
            if m is None:
                rule = RULES.get(n.op)
                m = rule(n) if rule is not None else None
            m = n if m is None else m
        else:
            return n
        if m is n:
            return n
        n = m
    return n


def simplify(graph: Graph, fold: Fold | None = None) -> Graph:
    """An equal graph with constants folded, identities removed, views composed.

    `fold(node) -> value` evaluates an elementwise node whose inputs are all
    constants (None: leave it); without it nothing is folded.
    """
    memo: dict[int, Node] = {}
    for n in graph.nodes:
        ins = tuple(memo[id(i)] for i in n.inputs)
        m = n
        if any(a is not b_ for a, b_ in zip(ins, n.inputs)):
            m = node(n.op, ins, n.arg, n.dtype, n.shape)
        memo[id(n)] = _rewrite(m, fold)
    return Graph(memo[id(o)] for o in graph.outputs)


def eliminate_dead(graph: Graph) -> Graph:
    """The graph with only the nodes its outputs reach (a fresh traversal)."""
    return Graph(graph.outputs)
