"""Reverse-mode autodiff as a graph pass.

`vjp(out, cot, wrt)` walks the nodes between `wrt` and `out` backwards and builds
the cotangent of every `wrt` node as ordinary IR nodes, so the backward graph is
fused and compiled like any other. One vector-Jacobian rule per primitive Op
lives in `VJP`; composite operations get their gradients from their primitives.

A rule takes (node, cotangent of node) and returns one cotangent per input
(None where an input gets no gradient). Integer and bool values carry no
gradient. Conventions at ties and kinks are PyTorch's: `abs`'(0) = 0 and
`abs`'(NaN) = 0, `maximum` splits the gradient evenly at ties (and gives it to
both operands where one is NaN), `amax` shares it among all maximal elements
(and gives NaN to every element of a slice whose maximum is NaN), `where`
routes it by the condition.

A record can name a rule of `RULES` instead (PyTorch's formula where it differs
from the primitives': `max()` of a whole tensor shares the gradient among the NaN
elements when the maximum is NaN).
"""

from __future__ import annotations

import itertools
import math
from math import prod

from .. import build as b
from ..graph import toposort
from ..node import Node, node
from ..ops import Op
from ..view import View

__all__ = ["RULES", "VJP", "accumulate", "vjp"]


def _c(x: Node, value) -> Node:
    return b.like(x, value)


def _equals_const(x: Node, value) -> bool:
    """Whether x is a non-bool CONST equal to `value` as a number (-0.0 == 0.0)."""
    return x.op is Op.CONST and x.arg == value and not x.dtype.is_bool


def _mul(x, y):
    # NOTE: the root cotangent is a constant 1; folding it keeps backward graphs small.
    if _equals_const(x, 1):
        return y
    if _equals_const(y, 1):
        return x
    return node(Op.MUL, (x, y))


def _div(x, y):
    return node(Op.DIV, (x, y))


def _add(x, y):
    """x + y, skipping a constant zero (how cotangents of one node accumulate)."""
    if _equals_const(x, 0):
        return y
    if _equals_const(y, 0):
        return x
    return node(Op.ADD, (x, y))


accumulate = _add


def _sub(x, y):
    return node(Op.SUB, (x, y))


def _neg(x):
    return node(Op.NEG, (x,))


def _zeros_like(x):
    return b.zeros(x.dtype, x.shape)


def _pow_vjp(n, g):
    x, y = n.inputs
    if y.op is Op.CONST:  # x ** c: c gets no gradient, and c == 0 is known now
        if y.arg == 0:
            return [_zeros_like(x), None]
        if y.arg == 2:
            dx = x
        elif y.arg == 0.5:  # NOTE: PyTorch's x ** -0.5 is rsqrt: -inf at -0, NaN at -inf
            dx = node(Op.RECIP, (node(Op.SQRT, (x,)),))
        else:
            dx = node(Op.POW, (x, _c(y, y.arg - 1)))
        return [_mul(g, _mul(y, dx)), None]
    # NOTE: PyTorch's pow_backward: the masks pick the local gradient, which is then
    # multiplied by g (a NaN cotangent stays NaN where the local gradient is 0)
    zero_exp = node(Op.EQ, (y, _c(y, 0)))
    local_x = _mul(y, node(Op.POW, (x, _sub(y, _c(y, 1)))))
    dx = _mul(g, b.where(zero_exp, _c(local_x, 0), local_x))
    mask = node(Op.AND, (node(Op.EQ, (x, _c(x, 0))), node(Op.LE, (_c(y, 0), y))))
    local_y = _mul(n, node(Op.LOG, (x,)))
    dy = _mul(g, b.where(mask, _c(local_y, 0), local_y))
    return [dx, dy]


def _minmax_vjp(n, g):
    x, y = n.inputs
    lo, hi = (y, x) if n.op is Op.MAX else (x, y)
    # NOTE: PyTorch's masks: an operand gets g unless it strictly loses, half at a
    # tie; so where one is NaN (no comparison holds) both operands get g.
    x_loses = node(Op.LT, (hi, lo))
    y_loses = node(Op.LT, (lo, hi))
    tie = node(Op.EQ, (x, y))
    half, zero = _mul(g, _c(g, 0.5)), _c(g, 0)
    return [b.where(tie, half, b.where(x_loses, zero, g)),
            b.where(tie, half, b.where(y_loses, zero, g))]


def _slice_vjp(n, g):
    (x,) = n.inputs
    view = View.contiguous(x.shape)
    for dim, (start, stop, step) in enumerate(n.arg):
        view = view.slice(dim, start, stop, step)
    return [b.reshape(b.write(b.zeros(g.dtype, (x.numel,)), g, view), x.shape)]


def _as_strided_vjp(n, g):
    (x,) = n.inputs
    view: View = n.arg
    # NOTE: expanded (stride-0) dims read one element many times; sum them first.
    axes = tuple(i for i, (sz, st) in enumerate(zip(view.shape, view.strides))
                 if st == 0 and sz > 1)
    if axes:
        g = b.reduce(Op.REDUCE_SUM, g, axes)
        view = View(g.shape, view.strides, view.offset)
    if not view.has_overlap():
        return [b.write(b.zeros(g.dtype, x.shape), g, view)]
    split = _disjoint_split(view)
    if split is not None:
        return [_sum_of_writes(g, x.shape, view, split)]
    idx = _linear_index(view)
    return [node(Op.SCATTER_ADD, (b.zeros(g.dtype, x.shape), idx, b.flat(g)), 0)]


_MAX_PARTS = 64


def _disjoint_split(view: View) -> tuple[int, ...] | None:
    """The fewest dims (at most two, at most _MAX_PARTS index combinations) whose every
    fixed index leaves a view without overlap, or None.

    NOTE: sliding windows (unfold, a convolution's columns) overlap only through their
    window dims: fixing those, each part is an ordinary strided view, and the gradient
    is a sum of plain writes instead of a scatter-add with an index per element.
    """
    best = None
    dims = range(view.ndim)
    for combo in [(d,) for d in dims] + [(d, e) for d in dims for e in dims if d < e]:
        parts = prod(view.shape[d] for d in combo)
        if parts > _MAX_PARTS or (best is not None and parts >= best[0]):
            continue
        rest = [d for d in dims if d not in combo]
        if not View(tuple(view.shape[d] for d in rest), tuple(view.strides[d] for d in rest),
                    view.offset).has_overlap():
            best = (parts, combo)
    return None if best is None else best[1]


def _sum_of_writes(g: Node, shape: tuple, view: View, split: tuple[int, ...]) -> Node:
    """The AS_STRIDED cotangent as a sum of one write per index of the `split` dims."""
    rest = [d for d in range(view.ndim) if d not in split]
    total = None
    for index in itertools.product(*(range(view.shape[d]) for d in split)):
        at = dict(zip(split, index))
        offset = view.offset + sum(view.strides[d] * i for d, i in at.items())
        part = View(tuple(view.shape[d] for d in rest), tuple(view.strides[d] for d in rest),
                    offset)
        arg = tuple((at[d], at[d] + 1, 1) if d in at else (0, n, 1)
                    for d, n in enumerate(view.shape))
        piece = b.reshape(node(Op.SLICE, (g,), arg), part.shape)
        w = b.write(b.zeros(g.dtype, shape), piece, part)
        total = w if total is None else _add(total, w)
    return total


def _linear_index(view: View) -> Node:
    """The flat storage index of every element of `view`, as an int64 node."""
    from ..dtypes import int64
    total = b.full(view.offset, int64, view.shape)
    for dim, (size, stride) in enumerate(zip(view.shape, view.strides)):
        r = node(Op.ARANGE, (), (0, stride), int64, (size,))
        shape = tuple(size if i == dim else 1 for i in range(len(view.shape)))
        total = _add(total, b.expand_to(b.reshape(r, shape), view.shape))
    return b.flat(total)


def _write_vjp(n, g):
    _dest, src = n.inputs
    view: View = n.arg
    return [b.write(g, _zeros_like(src), view), b.as_strided(g, view)]


def _reduce_sum_vjp(n, g):
    return [b.expand_to(g, n.inputs[0].shape)]


def _reduce_extreme_vjp(n, g):
    """amax/amin: the maximal elements share g; a NaN maximum gives NaN to its slice.

    NOTE: no element equals a NaN maximum, so its count is 0 and g / 0 * 0 is NaN,
    as PyTorch's amax gives.
    """
    (x,) = n.inputs
    return [_share(x, b.expand_to(n, x.shape), g, n.arg, nan_hits=False)]


def _share(x: Node, m: Node, g: Node, axes, nan_hits: bool, fill: bool = False) -> Node:
    """g (reduced over `axes`) shared evenly among the elements of x equal to m (x's
    shape); with `nan_hits`, a NaN m is shared among the NaN elements instead. `fill`:
    the other elements get 0 even where the share is NaN (PyTorch's masked_fill in
    evenly_distribute_backward), not share * 0 (its scale_grad_by_count)."""
    hit = node(Op.EQ, (x, m))
    if nan_hits:
        hit = node(Op.OR, (hit, node(Op.AND, (node(Op.NE, (m, m)), node(Op.NE, (x, x))))))
    hits = b.cast(hit, x.dtype)
    count = b.reduce(Op.REDUCE_SUM, hits, axes)
    share = b.expand_to(_div(g, count), x.shape)
    if fill:
        return b.where(hit, share, _c(share, 0))
    return _mul(share, hits)


def _kept(x: Node, axes) -> tuple[int, ...]:
    """x's shape with `axes` reduced to 1 (a keepdim reduction's shape)."""
    return tuple(1 if i in axes else s for i, s in enumerate(x.shape))


def _evenly_rule(out: Node, g: Node, ins: tuple) -> list:
    """`max()`/`min()` of a whole tensor (PyTorch's evenly_distribute_backward): the
    elements equal to the result share g, the NaN ones when it is NaN."""
    (x,) = ins
    axes = tuple(range(x.ndim))
    m = b.expand_to(b.reshape(out, (1,) * x.ndim), x.shape)
    return [_share(x, m, b.reshape(g, (1,) * x.ndim), axes, nan_hits=True, fill=True)]


def _norm_inf_rule(out: Node, g: Node, ins: tuple, axes: tuple) -> list:
    """`norm(x, ±inf, axes)`: the elements whose |x| is the norm, or NaN, share g
    with their sign (PyTorch's formula, whose sign of NaN is 0)."""
    (x,) = ins
    kept = _kept(x, axes)
    a = node(Op.ABS, (x,))
    share = _share(a, b.expand_to(b.reshape(out, kept), x.shape), b.reshape(g, kept), axes,
                   nan_hits=True)
    return [_mul(_sgn(x), share)]


def _prod_rule(out: Node, g: Node, ins: tuple, axes: tuple, whole: bool) -> list:
    """`prod(x)` (`whole`) or `prod(x, dim)`: PyTorch's prod_backward. Without a zero
    in x, g * prod / x; with zeros, each element gets g times the product of the
    others of its slice (PyTorch's prefix and suffix products, so a 0 and an inf
    among them give NaN); `prod()` of a tensor with two zeros or more gives 0."""
    (x,) = ins
    if x.ndim == 0:
        return [b.cast(g, x.dtype)]
    xc = b.cast(x, g.dtype)
    kept = _kept(xc, axes)

    def over_slice(op, v):  # v reduced over its slice, broadcast back to x's shape
        return b.expand_to(b.reduce(op, v, axes), x.shape)

    def others(mask):  # how many of the other elements of the slice are in mask
        m = b.cast(mask, xc.dtype)
        return node(Op.LT, (_c(m, 0), _sub(over_slice(Op.REDUCE_SUM, m), m)))

    is_zero = node(Op.EQ, (xc, _c(xc, 0)))
    is_nan = node(Op.NE, (xc, xc))
    is_inf = node(Op.EQ, (node(Op.ABS, (xc,)), _c(xc, float("inf"))))
    finite = node(Op.NOT, (node(Op.OR, (is_zero, node(Op.OR, (is_nan, is_inf)))),))
    # the product of the other elements, by cases
    p = over_slice(Op.REDUCE_PROD, b.where(finite, xc, _c(xc, 1)))
    finite_part = b.where(finite, _div(p, xc), p)
    sign = b.where(node(Op.OR, (finite, is_inf)), node(Op.SIGN, (xc,)), _c(xc, 1))
    infinite_part = _mul(_mul(over_slice(Op.REDUCE_PROD, sign), sign), _c(xc, float("inf")))
    nan = _c(xc, float("nan"))
    rest = b.where(others(is_nan), nan, b.where(
        others(is_zero), b.where(others(is_inf), nan, _c(xc, 0)),
        b.where(others(is_inf), infinite_part, finite_part)))
    gk = b.expand_to(b.reshape(g, kept), x.shape)
    plain = _mul(gk, _div(b.expand_to(b.reshape(out, kept), x.shape), xc))
    zeros = b.expand_to(b.reduce(Op.REDUCE_SUM, b.cast(is_zero, xc.dtype),
                                 tuple(range(x.ndim))), x.shape)
    safe = _mul(gk, rest)
    if whole:
        safe = b.where(node(Op.EQ, (zeros, _c(zeros, 1))), safe, _c(safe, 0))
    return [b.cast(b.where(node(Op.EQ, (zeros, _c(zeros, 0))), plain, safe), x.dtype)]


def _nan_reduce_rule(out: Node, g: Node, ins: tuple, axes: tuple, mean: bool) -> list:
    """`nansum(x)`, `nanmean(x)` (PyTorch's formulas): g (over the slice's count of
    numbers, for the mean) times 1 at a number, 0 at a NaN; so the NaN of a slice
    holding only NaN get g / 0 * 0, NaN."""
    (x,) = ins
    ok = b.cast(node(Op.EQ, (x, x)), g.dtype)
    gk = b.reshape(g, _kept(x, axes))
    if mean:
        gk = _div(gk, b.reduce(Op.REDUCE_SUM, ok, axes))
    return [b.cast(_mul(b.expand_to(gk, x.shape), ok), x.dtype)]


# rule name -> (out, cotangent of out, input nodes, *the rule's arguments) -> one
# cotangent per input
RULES = {"evenly": _evenly_rule, "norm_inf": _norm_inf_rule, "prod": _prod_rule,
         "nan_reduce": _nan_reduce_rule}


def _sgn(x: Node) -> Node:
    """PyTorch's sign: 0 at NaN (NumPy's, the SIGN primitive's, is NaN)."""
    return b.where(node(Op.NE, (x, x)), _c(x, 0), node(Op.SIGN, (x,)))


def _abs_vjp(n, g):
    return [_mul(g, _sgn(n.inputs[0]))]


def _reduce_prod_vjp(n, g):
    (x,) = n.inputs
    is_zero = node(Op.EQ, (x, _c(x, 0)))
    nonzero = b.where(is_zero, _c(x, 1), x)
    prod_nonzero = b.expand_to(b.reduce(Op.REDUCE_PROD, nonzero, n.arg), x.shape)
    zeros = b.expand_to(b.reduce(Op.REDUCE_SUM, b.cast(is_zero, x.dtype), n.arg), x.shape)
    no_zero = node(Op.EQ, (zeros, _c(zeros, 0)))
    one_zero = node(Op.EQ, (zeros, _c(zeros, 1)))
    grad = b.where(no_zero, _div(prod_nonzero, nonzero),
                   b.where(node(Op.AND, (one_zero, is_zero)), prod_nonzero, _c(x, 0)))
    return [_mul(b.expand_to(g, x.shape), grad)]


def _matmul_vjp(n, g):
    x, y = n.inputs
    order = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return [node(Op.MATMUL, (g, b.permute(y, order))),
            node(Op.MATMUL, (b.permute(x, order), g))]


def _permute_vjp(n, g):
    inverse = [0] * len(n.arg)
    for i, a in enumerate(n.arg):
        inverse[a] = i
    return [b.permute(g, inverse)]


def _take_vjp(n, g):
    x, idx = n.inputs
    return [node(Op.SCATTER_ADD, (_zeros_like(x), idx, g), n.arg), None]


def _scatter_vjp(n, g):
    _dest, idx, src = n.inputs
    if n.op is Op.SCATTER:
        gdest = node(Op.SCATTER, (g, idx, _zeros_like(src)), n.arg)
    else:
        gdest = g
    return [gdest, None, node(Op.TAKE, (g, idx), n.arg)]


def _cumsum_vjp(n, g):
    axis = (n.arg,)
    return [node(Op.FLIP, (node(Op.CUMSUM, (node(Op.FLIP, (g,), axis),), n.arg),), axis)]


def _square(x: Node) -> Node:
    return node(Op.MUL, (x, x))


def _rsqrt(x: Node) -> Node:
    return node(Op.RECIP, (node(Op.SQRT, (x,)),))


def _atan2_vjp(n, g):
    x, y = n.inputs
    # NOTE: PyTorch zeroes the infinite 1 / (x^2 + y^2) at the origin: the gradient is 0
    square = _add(_square(x), _square(y))
    recip = b.where(node(Op.EQ, (square, _c(square, 0))), _c(square, 0),
                    node(Op.RECIP, (square,)))
    return [_mul(g, _mul(y, recip)), _mul(g, _mul(_neg(x), recip))]


def _copysign_vjp(n, g):
    """PyTorch's: g * (result / x), 0 where x == 0; the sign source gets 0."""
    x, y = n.inputs
    ratio = b.where(node(Op.EQ, (x, _c(x, 0))), _c(x, 0), _div(n, x))
    return [_mul(g, ratio), _zeros_like(y)]


def _erf_slope(x: Node) -> Node:
    """erf'(x) = 2 / sqrt(pi) * exp(-x^2), PyTorch's formula."""
    return _mul(_c(x, 2 / math.sqrt(math.pi)), node(Op.EXP, (_neg(_mul(x, x)),)))


def _reverse_cumsum(x: Node, axis: int) -> Node:
    return node(Op.FLIP, (node(Op.CUMSUM, (node(Op.FLIP, (x,), (axis,)),), axis),), (axis,))


def _cumprod_grad(x: Node, y: Node, g: Node, axis: int) -> Node:
    """PyTorch's cumprod gradient, exact with zeros: before x's first zero along the
    axis, sum_{i>=j} g_i y_i / x_j; at the first zero, the same sum over the running
    product that skips it; after it, 0 (every product there holds that zero)."""
    from ..dtypes import int64
    is_zero = node(Op.EQ, (x, _c(x, 0)))
    zeros_so_far = node(Op.CUMSUM, (b.cast(is_zero, int64),), axis)
    before = node(Op.EQ, (zeros_so_far, _c(zeros_so_far, 0)))
    first = node(Op.AND, (is_zero, node(Op.EQ, (zeros_so_far, _c(zeros_so_far, 1)))))
    plain = _div(_reverse_cumsum(_mul(g, y), axis), x)
    skipped = node(Op.SCAN, (b.where(first, _c(x, 1), x),), (axis, "prod"))
    at_first = _reverse_cumsum(_mul(g, skipped), axis)
    return b.where(before, plain, b.where(first, at_first, _c(x, 0)))


# the lowest finite value of each float dtype (PyTorch's numeric_limits::lowest)
_LOWEST = {"float64": -1.7976931348623157e308, "float32": -3.4028234663852886e38,
           "float16": -65504.0, "bfloat16": -3.3895313892515355e38}


def _logcumsumexp_grad(x: Node, y: Node, g: Node, axis: int) -> Node:
    """PyTorch's logcumsumexp gradient: the positive and negative parts of g, each
    summed in log space (a reverse logcumsumexp), so that nothing overflows."""
    def reverse_lcse(v):
        return node(Op.FLIP, (node(Op.SCAN, (node(Op.FLIP, (v,), (axis,)),),
                                   (axis, "logsumexp")),), (axis,))
    lowest = _c(g, _LOWEST[g.dtype.name])
    log_abs = node(Op.LOG, (node(Op.ABS, (g,)),))
    positive = b.where(node(Op.LT, (_c(g, 0), g)), log_abs, lowest)
    negative = b.where(node(Op.LT, (g, _c(g, 0))), log_abs, lowest)
    pos = node(Op.EXP, (_add(reverse_lcse(_sub(positive, y)), x),))
    neg = node(Op.EXP, (_add(reverse_lcse(_sub(negative, y)), x),))
    return _sub(pos, neg)


def _scan_vjp(n, g):
    """prod and logsumexp scans: PyTorch's formulas. max and min scans carry no
    gradient: cummax/cummin gather their values by index (tracer/scans.py), so the
    gradient flows through the gather, as PyTorch's scatter-adds it."""
    axis, kind = n.arg
    (x,) = n.inputs
    if kind == "prod":
        return [_cumprod_grad(x, n, g, axis)]
    if kind == "logsumexp":
        return [_logcumsumexp_grad(x, n, g, axis)]
    return [None]


def _scatter_reduce_vjp(n, g):
    """PyTorch's scatter_reduce gradients (over the flat form this op takes in ember)."""
    dest, idx, src = n.inputs
    axis, kind, include_self = n.arg

    def take(v):
        return node(Op.TAKE, (v, idx), axis)

    def scatter_add(start, v):
        return node(Op.SCATTER_ADD, (start, idx, v), axis)

    if kind in ("amax", "amin"):
        # the elements equal to the result share its gradient evenly
        self_is = node(Op.EQ, (dest, n))
        src_is = node(Op.EQ, (src, take(n)))
        # NOTE: as PyTorch's, the count includes input's own value where it equals the
        # result even without include_self (that share is then dropped)
        count = scatter_add(b.cast(self_is, g.dtype), b.cast(src_is, g.dtype))
        share = _div(g, count)
        return [_unless_included(b.where(self_is, share, _c(share, 0)), idx, axis,
                                 include_self), None,
                b.where(src_is, take(share), _c(src, 0))]
    # prod: g * result / x, with x's zeros handled as PyTorch does
    dest_zero = node(Op.EQ, (dest, _c(dest, 0)))
    masked_dest = b.where(dest_zero, _c(dest, 1), dest)
    without_self = node(Op.SCATTER_REDUCE, (masked_dest, idx, src), n.arg)
    g_dest = _div(_mul(g, without_self), masked_dest)
    src_zero = node(Op.EQ, (src, _c(src, 0)))
    zeros = take(scatter_add(_zeros_like(dest), b.cast(src_zero, dest.dtype)))
    single = node(Op.AND, (src_zero, node(Op.EQ, (zeros, _c(zeros, 1)))))
    skip_zero = node(Op.SCATTER_REDUCE, (dest, idx, b.where(single, _c(src, 1), src)), n.arg)
    plain = _div(take(_mul(g, n)), b.where(src_zero, _c(src, 1), src))
    g_src = b.where(single, take(_mul(g, skip_zero)), plain)
    return [_unless_included(g_dest, idx, axis, include_self), None, g_src]


def _unless_included(g_dest: Node, idx: Node, axis: int, include_self: bool) -> Node:
    """g_dest, 0 at the written positions when the reduction left input's value out."""
    if include_self:
        return g_dest
    zeros = b.zeros(g_dest.dtype, g_dest.shape[:axis] + idx.shape + g_dest.shape[axis + 1:])
    return node(Op.SCATTER, (g_dest, idx, zeros), axis)


def _cast_vjp(n, g):
    x = n.inputs[0]
    return [b.cast(g, x.dtype) if x.dtype.is_floating_point else None]


def _zero(n, g):
    return [_zeros_like(x) for x in n.inputs]


def _none(n, g):
    return [None] * len(n.inputs)


VJP = {
    Op.NEG: lambda n, g: [_neg(g)],
    Op.EXP: lambda n, g: [_mul(g, n)],
    Op.LOG: lambda n, g: [_div(g, n.inputs[0])],
    Op.SIN: lambda n, g: [_mul(g, node(Op.COS, n.inputs))],
    Op.COS: lambda n, g: [_neg(_mul(g, node(Op.SIN, n.inputs)))],
    Op.TAN: lambda n, g: [_mul(g, _add(_c(n, 1), _mul(n, n)))],
    Op.TANH: lambda n, g: [_mul(g, _sub(_c(n, 1), _mul(n, n)))],
    Op.SQRT: lambda n, g: [_div(g, _mul(_c(n, 2), n))],
    Op.ABS: _abs_vjp,
    Op.SIGN: _zero, Op.FLOOR: _zero, Op.CEIL: _zero, Op.ROUND: _zero, Op.TRUNC: _zero,
    Op.LOG1P: lambda n, g: [_div(g, _add(_c(n, 1), n.inputs[0]))],
    Op.EXPM1: lambda n, g: [_mul(g, _add(n, _c(n, 1)))],
    Op.EXP2: lambda n, g: [_mul(_mul(g, n), _c(n, math.log(2)))],  # torch's g * 2^x * ln 2
    Op.RECIP: lambda n, g: [_neg(_mul(g, _mul(n, n)))],
    Op.NOT: _none,
    # PyTorch's formulas (derivatives.yaml)
    Op.ASIN: lambda n, g: [_mul(g, _rsqrt(_sub(_c(n, 1), _square(n.inputs[0]))))],
    Op.ACOS: lambda n, g: [_neg(_mul(g, _rsqrt(_sub(_c(n, 1), _square(n.inputs[0])))))],
    Op.ATAN: lambda n, g: [_div(g, _add(_square(n.inputs[0]), _c(n, 1)))],
    Op.SINH: lambda n, g: [_mul(g, node(Op.COSH, n.inputs))],
    Op.COSH: lambda n, g: [_mul(g, node(Op.SINH, n.inputs))],
    Op.ASINH: lambda n, g: [_mul(g, _rsqrt(_add(_square(n.inputs[0]), _c(n, 1))))],
    Op.ACOSH: lambda n, g: [_mul(g, _rsqrt(_sub(_square(n.inputs[0]), _c(n, 1))))],
    Op.ATANH: lambda n, g: [_mul(g, node(Op.RECIP, (_sub(_c(n, 1), _square(n.inputs[0])),)))],
    Op.ERF: lambda n, g: [_mul(g, _erf_slope(n.inputs[0]))],
    Op.ERFC: lambda n, g: [_neg(_mul(g, _erf_slope(n.inputs[0])))],
    # torch's g * sqrt(pi) / 2 * exp(erfinv(x) ** 2)
    Op.ERFINV: lambda n, g: [_mul(g, _mul(_c(n, math.sqrt(math.pi) / 2),
                                          node(Op.EXP, (_mul(n, n),))))],
    Op.CAST: _cast_vjp,
    Op.ADD: lambda n, g: [g, g],
    Op.SUB: lambda n, g: [g, _neg(g)],
    Op.MUL: lambda n, g: [_mul(g, n.inputs[1]), _mul(g, n.inputs[0])],
    Op.DIV: lambda n, g: [_div(g, n.inputs[1]), _neg(_div(_mul(g, n), n.inputs[1]))],
    Op.POW: _pow_vjp,
    Op.MAX: _minmax_vjp,
    Op.MIN: _minmax_vjp,
    Op.LT: _none, Op.LE: _none, Op.EQ: _none, Op.NE: _none,
    Op.AND: _none, Op.OR: _none, Op.XOR: _none, Op.FLOORDIV: _zero,
    # NOTE: floor(x / y) is not x // y at infinities (1 // -inf is -1, inf // 1 NaN)
    Op.MOD: lambda n, g: [g, _neg(_mul(g, node(Op.FLOORDIV, n.inputs)))],
    Op.ATAN2: _atan2_vjp,
    Op.HYPOT: lambda n, g: [_mul(g, _div(n.inputs[0], n)), _mul(g, _div(n.inputs[1], n))],
    Op.COPYSIGN: _copysign_vjp,
    Op.FMOD: lambda n, g: [g, _neg(_mul(g, node(Op.TRUNC, (_div(*n.inputs),))))],
    Op.SHL: _none, Op.SHR: _none,
    Op.WHERE: lambda n, g: [None, b.where(n.inputs[0], g, _c(g, 0)),
                            b.where(n.inputs[0], _c(g, 0), g)],
    Op.RESHAPE: lambda n, g: [b.reshape(g, n.inputs[0].shape)],
    Op.PERMUTE: _permute_vjp,
    Op.EXPAND: lambda n, g: [b.sum_to(g, n.inputs[0].shape)],
    Op.SLICE: _slice_vjp,
    Op.FLIP: lambda n, g: [node(Op.FLIP, (g,), n.arg)],
    Op.AS_STRIDED: _as_strided_vjp,
    Op.WRITE: _write_vjp,
    Op.REDUCE_SUM: _reduce_sum_vjp,
    Op.REDUCE_MAX: _reduce_extreme_vjp,
    Op.REDUCE_MIN: _reduce_extreme_vjp,
    Op.REDUCE_PROD: _reduce_prod_vjp,
    Op.MATMUL: _matmul_vjp,
    Op.TAKE: _take_vjp,
    Op.SCATTER: _scatter_vjp,
    Op.SCATTER_ADD: _scatter_vjp,
    Op.ARGSORT: _none,
    Op.CUMSUM: _cumsum_vjp,
    Op.SCAN: _scan_vjp,
    Op.SCATTER_REDUCE: _scatter_reduce_vjp,
}


class _Cotangent:
    """The argument of a stand-in cotangent node (no value; read by no program)."""

    __slots__ = ("__weakref__",)

    def __repr__(self) -> str:
        return "cotangent"


def vjp(out: Node, cot: Node, wrt: tuple[Node, ...], stop: tuple[Node, ...] = (),
        reads: bool = True) -> tuple[list[Node | None], set[int]]:
    """Cotangents of `wrt` given the cotangent `cot` of `out`.

    `stop` are further inputs of `out` that get no gradient: the walk does not go
    below them, so a `wrt` node that also feeds one of them (as `x` feeds
    `x.detach() * 2`) gets no gradient through it. Returns the cotangents (None
    where a wrt node gets no gradient) and the ids of the forward nodes computed
    from the inputs that the backward graph reads (for saved-value version checks;
    an empty set when `reads` is False).
    """
    targets = {id(w) for w in wrt}
    leaves = targets | {id(s) for s in stop}
    order = toposort([out], stop=lambda n: id(n) in leaves)
    depends: set[int] = set()
    for n in order:
        inner = id(n) not in leaves and any(id(i) in depends for i in n.inputs)
        if inner or id(n) in targets:
            depends.add(id(n))
    cots: dict[int, Node] = {id(out): cot} if id(out) in depends else {}
    for n in reversed(order):
        g = cots.get(id(n))
        if g is None or id(n) in targets:
            continue
        for x, gx in zip(n.inputs, VJP[n.op](n, g)):
            if gx is None or id(x) not in depends or not x.dtype.is_floating_point:
                continue
            if gx.shape != x.shape:  # pragma: no cover - a broken rule
                raise AssertionError(f"VJP of {n.op} gave shape {gx.shape} for {x.shape}")
            prev = cots.get(id(x))
            cots[id(x)] = gx if prev is None else _add(prev, gx)
    results = [cots.get(id(w)) for w in wrt]
    if not reads:
        return results, set()
    # NOTE: the cotangent may be a forward node itself (g * w with g = 1 is w), and what
    # the rules build over it a forward node too (w * 3, the very result): the reads
    # are those of the same rules over a cotangent that is no forward value.
    cot = node(Op.BUFFER, (), _Cotangent(), cot.dtype, cot.shape)
    fresh = [r for r in vjp(out, cot, wrt, stop, reads=False)[0] if r is not None]
    # the forward nodes whose values come from the inputs (constants need no check)
    forward: set[int] = set()
    for n in order:
        if id(n) in leaves or any(id(i) in forward for i in n.inputs):
            forward.add(id(n))
    used: set[int] = set()
    everything = {id(n) for n in order}
    for n in toposort(fresh, stop=lambda n: id(n) in everything or n is cot):
        if id(n) in forward:
            used.add(id(n))
    return results, used
