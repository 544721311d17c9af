"""Elementwise operations: promotion, broadcasting, arithmetic, comparisons.

Every function here validates its operands, promotes them with PyTorch's rules
(Python scalars weak), broadcasts them, builds primitive nodes and wraps the
result with `result(...)`, which records the GradFn named after PyTorch's.
Composite operations (sigmoid, relu, clamp, isfinite, ...) are a few nodes of
primitives each, so autodiff and fusion see only primitives.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, const, node
from ..ir.ops import Op
from ..runtime.context import current
from ..runtime.interpreter import check_divisor
from .records import common_device, result
from .tensor import Tensor, copy_of, distinct_nodes

__all__ = [
    "broadcast_shapes", "add", "sub", "mul", "multiply", "div", "divide", "true_divide",
    "floor_divide", "remainder", "pow", "neg", "negative", "abs", "square", "sqrt", "rsqrt",
    "exp", "exp2", "log", "log2", "log10", "log1p", "expm1", "sin", "cos", "tan", "tanh",
    "erf", "erfc", "erfinv",
    "sigmoid", "relu", "maximum", "minimum", "clamp", "clip", "where", "sign", "floor", "ceil",
    "round", "trunc", "reciprocal", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
    "logical_or", "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_not", "isnan", "isfinite", "isinf", "nan_to_num", "lerp", "as_operand",
    "laid_out", "memory_order",
]


def as_operand(x, what: str = "operand"):
    """A Tensor or a Python number; anything else becomes a tensor or a TypeError."""
    kind = type(x)
    if kind is Tensor or kind is float or kind is int:
        return x
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, numbers.Number, np.bool_)) and not isinstance(x, complex):
        if isinstance(x, np.generic):
            return x.item()
        return x
    if isinstance(x, np.ndarray):
        return copy_of(x)
    raise TypeError(f"unsupported {what} of type {type(x).__name__}: expected a Tensor or a "
                    "number")


def broadcast_shapes(*shapes) -> tuple[int, ...]:
    """The shape that `shapes` broadcast to, or PyTorch's error naming the dimension."""
    shapes = [(s,) if isinstance(s, int) else tuple(s) for s in shapes]
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, size in enumerate(s):
            j = ndim - len(s) + i
            if size == out[j] or size == 1:
                continue
            if out[j] == 1:
                out[j] = size
                continue
            other = next(t for t in shapes if len(t) >= ndim - j and t[j - ndim + len(t)] != 1)
            raise RuntimeError(
                f"The size of tensor a ({other[j - ndim + len(other)]}) must match the size of "
                f"tensor b ({size}) at non-singleton dimension {j}: shapes {list(other)} and "
                f"{list(s)} cannot be broadcast together")
    return tuple(out)


def _dtype_of(operands) -> dt.DType:
    dims, zero, scalars = [], [], []
    for x in operands:
        if isinstance(x, Tensor):
            (dims if x.ndim else zero).append(x.dtype)
        else:
            scalars.append(x)
    return dt.result_type(dims, zero, scalars)


def _operand(x, raw: Node | None, dtype: dt.DType, shape) -> Node:
    if raw is None:
        return b.full(x, dtype, shape)
    return b.expand_to(b.cast(raw, dtype), shape)


def _apply(op: Op, operands, name: str, *, compute: dt.DType | None = None,
           out: dt.DType | None = None, build=None, stops=(), keep_layout: bool = True
           ) -> Tensor:
    """Promote, broadcast and combine `operands` with `op` (or a custom `build`).

    `stops`: nodes the gradient treats as constants (see autograd.record); a list
    that `build` fills is read after it ran.
    """
    fast = _fast_nodes(operands, compute)
    if fast is not None:
        tensors, raws, nodes = fast
        device = tensors[0]._storage.device
        scalars = (1,) if len(operands) == 2 and len(tensors) == 1 else ()
    else:
        operands = [as_operand(x) for x in operands]
        tensors = tuple(x for x in operands if isinstance(x, Tensor))
        device = common_device(tensors)
        dtype = compute or _dtype_of(operands)
        shape = broadcast_shapes(*(x.shape for x in tensors))
        raws = distinct_nodes(tensors, tuple(t.node for t in tensors))
        by_id = {id(t): r for t, r in zip(tensors, raws)}
        nodes = [_operand(x, by_id.get(id(x)) if isinstance(x, Tensor) else None, dtype, shape)
                 for x in operands]
        # NOTE: PyTorch lists the tensor operands first, whichever side a number was on
        scalars = tuple(range(len(tensors), len(operands)))
    order = None
    for t in tensors if keep_layout else ():  # NOTE: all contiguous: no call (hot path)
        if not t._view._contiguous:
            order, nodes = laid_out(tensors, nodes, raws)
            break
    n = build(*nodes) if build is not None else node(op, tuple(nodes))
    if out is not None:
        n = b.cast(n, out)
    return result(n, tensors, name, raws, device, scalars, order, tuple(stops))


def laid_out(tensors, nodes, raws=None) -> tuple:
    """(order, nodes) for an elementwise result of `tensors` over operand `nodes`:
    the result's layout (`memory_order`) and the operands read in it.

    The casts and broadcasts the operation put over its inputs' nodes (`raws`,
    default the tensors' nodes) are permuted below, so a kernel reads the inputs
    in their order; the inputs' nodes themselves stay on the path (autograd
    finds an operation's inputs there).
    """
    for t in tensors:
        if not t._view._contiguous:
            order = memory_order(tensors, nodes[0].shape)
            if order is None:
                break
            own = raws if raws is not None else [x.node for x in tensors]
            stop = {id(r) for r in own}

            def permuted(x: Node) -> Node:
                if id(x) not in stop:
                    if x.op is Op.CAST:
                        return b.cast(permuted(x.inputs[0]), x.dtype)
                    if x.op is Op.EXPAND and x.inputs[0].ndim == x.ndim:
                        return b.expand_to(permuted(x.inputs[0]),
                                           tuple(x.shape[d] for d in order))
                return b.permute(x, order)

            return order, [permuted(x) for x in nodes]
    return None, nodes


def memory_order(tensors, shape) -> tuple[int, ...] | None:
    """The dims of an elementwise result of `tensors`, outermost first, in the
    layout PyTorch gives it; None when that is row-major.

    PyTorch's TensorIterator rule: dims sort by the operands' strides, the first
    operand deciding unless it broadcasts along one of the two dims or their
    strides are equal (then the next one; equal strides put the smaller dim
    inside); a tie everywhere keeps row-major order. So `x.T * 2` is laid out as
    x is and its kernel reads x's memory in order, where row-major order would
    read it across (a 4096x4096 float32 transposed copy: 120 ms against 10).
    """
    ndim = len(shape)
    if ndim < 2:
        return None
    if len(tensors) == 1 and tensors[0]._view.shape == shape:
        st = tensors[0]._view.strides
        if 0 not in st and len(set(st)) == ndim:  # no ties: the strides alone decide
            order = tuple(sorted(range(ndim), key=st.__getitem__, reverse=True))
            return None if order == tuple(range(ndim)) else order
    return order_of_strides([aligned_strides(t._view.shape, t._view.strides, shape)
                             for t in tensors], shape)


def aligned_strides(size: tuple, strides: tuple, shape: tuple) -> list[int]:
    """An operand's strides broadcast to `shape`: 0 along the dims it is broadcast over."""
    lead = len(shape) - len(size)
    return [0] * lead + [0 if n == 1 and shape[lead + i] != 1 else st
                         for i, (n, st) in enumerate(zip(size, strides))]


def order_of_strides(strides: list, shape: tuple) -> tuple[int, ...] | None:
    """`memory_order` from the operands' strides aligned to `shape` (`aligned_strides`)."""
    ndim = len(shape)

    def should_swap(d0: int, d1: int) -> int:
        for st in strides:
            s0, s1 = st[d0], st[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return -1 if s0 < s1 else 1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(range(ndim - 1, -1, -1))  # innermost first
    for i in range(1, ndim):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            c = should_swap(perm[d0], perm[d1])
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    order = tuple(reversed(perm))
    return None if order == tuple(range(ndim)) else order


_PY_CATEGORY = {bool: 0, int: 1, float: 2}


def _fast_nodes(operands, compute):
    """The common cases without the general machinery: one tensor, two tensors of one
    shape and dtype, or a tensor and a Python scalar it absorbs (on either side).
    None otherwise."""
    first = operands[0]
    if type(first) is not Tensor:
        if len(operands) != 2 or type(operands[1]) is not Tensor:
            return None
        return _with_number(operands[1], first, compute, left=True)  # 1 - x, 2 * x
    raw = first.node
    if len(operands) == 1:
        return (first,), (raw,), [raw if compute is None else b.cast(raw, compute)]
    if len(operands) != 2:
        return None
    other = operands[1]
    kind = type(other)
    if kind is Tensor:
        if other.dtype is not first.dtype or other._storage.device != first._storage.device:
            return None
        if other._view.shape != first._view.shape:
            return _broadcast_pair(first, other, raw, compute)
        raw2 = other.node
        if raw2 is raw and other is not first:
            raw2 = distinct_nodes((first, other), (raw, raw2))[1]
        if compute is not None:
            return (first, other), (raw, raw2), [b.cast(raw, compute), b.cast(raw2, compute)]
        return (first, other), (raw, raw2), [raw, raw2]
    return _with_number(first, other, compute, left=False)


def _broadcast_pair(first: Tensor, other: Tensor, raw: Node, compute):
    """Two tensors of one dtype and device, of shapes that must broadcast."""
    shape = broadcast_shapes(first._view.shape, other._view.shape)
    raw2 = other.node
    nodes = (raw, raw2) if compute is None else (b.cast(raw, compute), b.cast(raw2, compute))
    return (first, other), (raw, raw2), [b.expand_to(n, shape) for n in nodes]


def _with_number(t: Tensor, number, compute, left: bool):
    """Tensor t with a Python number it absorbs (weak scalar), or None."""
    category = _PY_CATEGORY.get(type(number))
    if category is None or category > t.dtype.category:
        return None
    raw = t.node
    if compute is None or compute is t.dtype:
        operand, c = raw, const(number, t.dtype, raw.shape)
    else:
        operand, c = b.cast(raw, compute), const(number, compute, raw.shape)
    return (t,), (raw,), [c, operand] if left else [operand, c]


def _float_dtype(operands) -> dt.DType:
    d = _dtype_of([as_operand(x) for x in operands])
    return d if d.is_floating_point else dt.default_float()


def _is_bool(x) -> bool:
    kind = type(x)
    if kind is float or kind is int:
        return False
    return x.dtype is dt.bool_ if isinstance(x, Tensor) else isinstance(x, (bool, np.bool_))


def _no_bool(x, what: str) -> None:
    if isinstance(x, Tensor) and x.dtype is dt.bool_:
        raise RuntimeError(f"{what} on a bool tensor is not supported. If you are trying to "
                           "invert a mask, use the `~` or `logical_not()` operator instead.")


# -- arithmetic ---------------------------------------------------------------

def add(input, other, *, alpha=1) -> Tensor:
    """`input + alpha * other` with broadcasting and type promotion."""
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    return _apply(Op.ADD, (input, other), "AddBackward0")


def sub(input, other, *, alpha=1) -> Tensor:
    """`input - alpha * other` (bool operands, tensors or Python bools, are refused)."""
    if _is_bool(input) or _is_bool(other):
        if _is_bool(input) and _is_bool(other):
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                               "supported. Use the `^` or `logical_xor()` operator instead.")
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` "
                           "operator instead.")
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    name = "SubBackward0" if isinstance(as_operand(input), Tensor) else "RsubBackward1"
    return _apply(Op.SUB, (input, other), name)


def mul(input, other) -> Tensor:
    """Elementwise product `input * other`, broadcast and promoted (Python numbers are weak).

    Args:
        input (Tensor or number): the first factor.
        other (Tensor or number): the second factor.

    The result has the broadcast shape of the operands and their promoted dtype.
    `em.multiply` is an alias of `em.mul`.

    >>> em.mul(em.tensor([1.0, 2.0]), 3)
    tensor([3., 6.])
    """
    return _apply(Op.MUL, (input, other), "MulBackward0")


multiply = mul


def div(input, other, *, rounding_mode=None) -> Tensor:
    """True division (integers give floats), or rounded with `rounding_mode`.

    Args:
        input (Tensor or number): the dividend.
        other (Tensor or number): the divisor.
        rounding_mode (str, optional): None for true division, "trunc" (toward zero)
            or "floor" (toward -inf); rounded integer divisions stay integers.

    `em.divide` and `em.true_divide` are aliases of `em.div`.

    >>> em.div(em.tensor([5, -5]), 2)
    tensor([ 2.5000, -2.5000])
    >>> em.div(em.tensor([5, -5]), 2, rounding_mode="floor")
    tensor([ 2, -3])
    """
    if rounding_mode is None:
        return _apply(Op.DIV, (input, other), "DivBackward0",
                      compute=_float_dtype((input, other)))
    if rounding_mode == "floor":
        return _floor_divide(input, other, "DivBackward2")
    if rounding_mode == "trunc":
        d = _dtype_of([as_operand(input), as_operand(other)])
        if d.is_floating_point:
            return _apply(Op.DIV, (input, other), "DivBackward2",
                          build=lambda x, y: node(Op.TRUNC, (node(Op.DIV, (x, y)),)))
        if d.is_integer:
            check_int_divisor(input, other)
            return _apply(Op.DIV, (input, other), "DivBackward2", build=_trunc_int)
        return _apply(Op.DIV, (input, other), "DivBackward2", compute=dt.float64,
                      out=d, build=lambda x, y: node(Op.TRUNC, (node(Op.DIV, (x, y)),)))
    raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                     f"found '{rounding_mode}'")


divide = true_divide = div


def check_int_divisor(input, other, now: bool = False) -> None:
    """Raise torch's error for an integer division (`//`, `%`, rounded `div`) by zero.

    A divisor known to be zero (a Python 0, a constant tensor of zeros) raises here;
    any other zero raises when the quotient is computed. `now`: read the divisor's
    value at once (an in-place division checks before it writes anything).
    """
    x, y = as_operand(input), as_operand(other)
    if not _dtype_of([x, y]).is_integer:
        return
    shape = broadcast_shapes(*(t.shape for t in (x, y) if isinstance(t, Tensor)))
    if math.prod(shape) == 0:
        return
    if not isinstance(y, Tensor):
        check_divisor(np.asarray(y))
    elif now:
        check_divisor(y._array())  # NOTE: reads, never shares (numpy() would)
    elif y.node.op is Op.CONST:
        check_divisor(np.asarray(y.node.arg))


def floor_divide(input, other) -> Tensor:
    """`input // other`, rounded toward -inf; an integer division by zero raises."""
    # NOTE: PyTorch gives floor_divide no derivative: its record is NotImplemented
    return _floor_divide(input, other, "torch::autograd::NotImplemented")


def _floor_divide(input, other, name: str) -> Tensor:
    check_int_divisor(input, other)
    return _apply(Op.FLOORDIV, (input, other), name)


def remainder(input, other) -> Tensor:
    """`input % other`, with the sign of `other`; an integer division by zero raises."""
    check_int_divisor(input, other)
    # NOTE: PyTorch's names: RemainderBackward0 by a number, RemainderBackward1 by a tensor
    name = "RemainderBackward1" if isinstance(other, Tensor) else "RemainderBackward0"
    return _apply(Op.MOD, (input, other), name)


def _trunc_int(x: Node, y: Node) -> Node:
    """Integer division rounded toward zero: the floor quotient, plus one where the
    exact quotient is negative and not whole (exact for every int64, unlike a float
    quotient; a zero divisor raises through FLOORDIV)."""
    q = node(Op.FLOORDIV, (x, y))
    inexact = node(Op.NE, (node(Op.MOD, (x, y)), b.like(x, 0)))
    negative = node(Op.NE, (node(Op.LT, (x, b.like(x, 0))), node(Op.LT, (y, b.like(y, 0)))))
    return b.where(node(Op.AND, (inexact, negative)), node(Op.ADD, (q, b.like(q, 1))), q)


ELEMENTWISE_EXPONENT = "elementwise"  # the arg of a POW node by a tensor of exponents


def pow(input, exponent) -> Tensor:
    """`input ** exponent`; integer tensors to negative integer powers are an error."""
    base_t, exp_t = as_operand(input), as_operand(exponent)
    if isinstance(base_t, Tensor) and not base_t.dtype.is_floating_point \
            and isinstance(exp_t, int) and not isinstance(exp_t, bool) and exp_t < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    if isinstance(base_t, Tensor):
        name = "PowBackward1" if isinstance(exp_t, Tensor) else "PowBackward0"
    else:
        # NOTE: PyTorch computes a number to a tensor's power into a row-major result
        return _apply(Op.POW, (base_t, exp_t), "PowBackward2", keep_layout=False,
                      build=lambda x, e: node(Op.POW, (x, e), ELEMENTWISE_EXPONENT))
    if isinstance(exp_t, Tensor):
        # NOTE: as PyTorch, a power by a tensor of exponents (a 0-d one too) is pow() of
        # each element (-inf ** 0.5 is inf) even where the exponents are one constant (a
        # filled tensor), while a number takes the scalar's path (sqrt for 0.5: -inf **
        # 0.5 is nan): the node says which (runtime/interpreter.py).
        return _apply(Op.POW, (base_t, exp_t), name,
                      build=lambda x, e: node(Op.POW, (x, e), ELEMENTWISE_EXPONENT))
    return _apply(Op.POW, (base_t, exp_t), name)


def neg(input) -> Tensor:
    """Elementwise negation `-input`, of input's shape and dtype (bool tensors are refused).

    `em.negative` is an alias of `em.neg`.

    >>> em.neg(em.tensor([1, -2]))
    tensor([-1,  2])
    """
    _no_bool(input, "Negation, the `-` operator,")
    return _apply(Op.NEG, (input,), "NegBackward0")


negative = neg


def abs(input) -> Tensor:
    """Elementwise absolute value `|input|`, of input's shape and dtype.

    >>> em.abs(em.tensor([-1.5, 2.0]))
    tensor([1.5000, 2.0000])
    """
    return _apply(Op.ABS, (input,), "AbsBackward0")


def square(input) -> Tensor:
    """`input * input`; bools square as int64, as `input ** 2` promotes them."""
    x = as_operand(input)
    compute = dt.int64 if isinstance(x, Tensor) and x.dtype is dt.bool_ else None
    return _apply(Op.MUL, (x,), "PowBackward0", compute=compute,
                  build=lambda n: node(Op.MUL, (n, n)))


def _float_unary(op: Op, name: str, build=None):
    def fn(input) -> Tensor:
        x = as_operand(input)
        return _apply(op, (x,), name, compute=_float_dtype((x,)), build=build)
    fn.__name__ = name.replace("Backward0", "").lower()
    fn.__doc__ = f"Elementwise {fn.__name__} (integer inputs give the default float dtype)."
    return fn


sqrt = _float_unary(Op.SQRT, "SqrtBackward0")
rsqrt = _float_unary(Op.SQRT, "RsqrtBackward0",
                     build=lambda x: node(Op.RECIP, (node(Op.SQRT, (x,)),)))
exp = _float_unary(Op.EXP, "ExpBackward0")
exp2 = _float_unary(Op.EXP2, "Exp2Backward0")
log = _float_unary(Op.LOG, "LogBackward0")
log2 = _float_unary(Op.LOG, "Log2Backward0",
                    build=lambda x: node(Op.DIV, (node(Op.LOG, (x,)), b.like(x, math.log(2)))))
log10 = _float_unary(Op.LOG, "Log10Backward0",
                     build=lambda x: node(Op.DIV, (node(Op.LOG, (x,)),
                                                   b.like(x, math.log(10)))))
log1p = _float_unary(Op.LOG1P, "Log1PBackward0")
expm1 = _float_unary(Op.EXPM1, "Expm1Backward0")
sin = _float_unary(Op.SIN, "SinBackward0")
cos = _float_unary(Op.COS, "CosBackward0")
tan = _float_unary(Op.TAN, "TanBackward0")
tanh = _float_unary(Op.TANH, "TanhBackward0")
reciprocal = _float_unary(Op.RECIP, "ReciprocalBackward0")
erf = _float_unary(Op.ERF, "ErfBackward0")
erfc = _float_unary(Op.ERFC, "ErfcBackward0")
erfinv = _float_unary(Op.ERFINV, "ErfinvBackward0")
erf.__doc__ = """The Gauss error function 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise.

    Integer inputs give the default float dtype; the gradient is
    2/sqrt(pi) * exp(-x^2). Accurate to a few ulp of float64.

    >>> em.erf(em.tensor([0.0, 1.0, -2.0]))
    tensor([ 0.0000,  0.8427, -0.9953])
    """
erfc.__doc__ = """The complementary error function 1 - erf(x), elementwise, accurate where it is
    tiny (large x). Integer inputs give the default float dtype.

    >>> em.erfc(em.tensor([0.0, 1.0, 3.0], dtype=em.float64))
    tensor([1.0000e+00, 1.5730e-01, 2.2090e-05], dtype=ember.float64)
    """
erfinv.__doc__ = """The inverse error function: y with erf(y) = x, for x in [-1, 1] (+-inf at
    +-1, NaN outside), elementwise. Integer inputs give the default float dtype; the
    gradient is sqrt(pi)/2 * exp(erfinv(x)^2).

    >>> em.erfinv(em.tensor([0.0, 0.5, -1.0]))
    tensor([0.0000, 0.4769,   -inf])
    """
def _sigmoid(x: Node) -> Node:
    # NOTE: exp(-|x|) never overflows, so neither the value nor the gradient of the
    # branch `where` discards can be inf (whose 0 * inf would poison the gradient).
    # -|x| is taken by the branch's condition, not by ABS, whose gradient sign(0) = 0
    # would make sigmoid'(0) 0 instead of 1/4.
    nonneg = node(Op.LE, (b.like(x, 0), x))
    e = node(Op.EXP, (b.where(nonneg, node(Op.NEG, (x,)), x),))
    one_plus = node(Op.ADD, (b.like(x, 1), e))
    return b.where(nonneg, node(Op.RECIP, (one_plus,)), node(Op.DIV, (e, one_plus)))


sigmoid = _float_unary(Op.EXP, "SigmoidBackward0", build=_sigmoid)


def relu(input) -> Tensor:
    """max(input, 0) as torch: -0.0 stays -0.0, NaN stays NaN; the gradient at 0 is 0."""
    x = as_operand(input)
    tracked = current().grad_enabled and isinstance(x, Tensor) and x._requires_grad
    return _relu(x, tracked)


def relu_graded(input, *, stops: list) -> Tensor:
    """`relu` built so that its gradient is PyTorch's whatever the grad mode: what an
    in-place `relu_` that autograd records writes (see `clamp_graded`)."""
    return _relu(as_operand(input), True, stops)


relu_graded.__name__ = "relu"


def _relu(x, tracked: bool, stops: list | None = None) -> Tensor:
    """relu of x; `tracked`: built for its gradient.

    The value is where(x < 0, 0, x), which keeps a -0.0 (torch's max(x, 0) returns x
    at a tie); tracked, it is routed through where(x <= 0, value, x) with the value a
    node the gradient stops at, so that no gradient flows at x = 0.
    """
    stops = [] if stops is None else stops

    def build(x):
        v = b.where(node(Op.LT, (x, b.like(x, 0))), b.like(x, 0), x)
        if not tracked or not x.dtype.is_floating_point:
            return v
        stops.append(v)
        return b.where(node(Op.LE, (x, b.like(x, 0))), v, x)
    return _apply(Op.WHERE, (x,), "ReluBackward0", build=build, stops=stops)


def _rounding(op: Op, name: str):
    def fn(input) -> Tensor:
        x = as_operand(input)
        if isinstance(x, Tensor) and not x.dtype.is_floating_point:
            return x.clone()
        return _apply(op, (x,), name)
    fn.__name__ = name.replace("Backward0", "").lower()
    return fn


floor = _rounding(Op.FLOOR, "FloorBackward0")
ceil = _rounding(Op.CEIL, "CeilBackward0")
trunc = _rounding(Op.TRUNC, "TruncBackward0")
floor.__doc__ = """Elementwise floor: the largest integer <= each element, of input's dtype.

    Integer and bool tensors are returned as a copy.

    >>> em.floor(em.tensor([-1.5, 0.5]))
    tensor([-2.,  0.])
    """
ceil.__doc__ = """Elementwise ceiling: the smallest integer >= each element, of input's dtype.

    Integer and bool tensors are returned as a copy.

    >>> em.ceil(em.tensor([-1.5, 0.5]))
    tensor([-1.,  1.])
    """
trunc.__doc__ = """Elementwise rounding toward zero, of input's dtype.

    Integer and bool tensors are returned as a copy.

    >>> em.trunc(em.tensor([-1.5, 0.5]))
    tensor([-1.,  0.])
    """
_round0 = _rounding(Op.ROUND, "RoundBackward0")


def round(input, *, decimals: int = 0) -> Tensor:
    """Round half to even, to `decimals` decimal places."""
    if decimals == 0:
        return _round0(input)
    scale = 10.0 ** decimals
    return _apply(Op.ROUND, (input,), "RoundBackward1", build=lambda x: node(Op.DIV, (
        node(Op.ROUND, (node(Op.MUL, (x, b.like(x, scale))),)), b.like(x, scale))))


def sign(input) -> Tensor:
    """-1, 0 or 1 by the sign of each element; NaN gives 0 and bools stay bools (as torch)."""
    x = as_operand(input)
    if isinstance(x, Tensor) and x.dtype is dt.bool_:
        return x.clone()
    if isinstance(x, Tensor) and x.dtype.is_floating_point:
        # NOTE: torch's sign(NaN) is 0 where NumPy's (the SIGN primitive's) is NaN.
        return _apply(Op.SIGN, (x,), "SignBackward0", build=lambda n: b.where(
            node(Op.NE, (n, n)), b.like(n, 0), node(Op.SIGN, (n,))))
    return _apply(Op.SIGN, (x,), "SignBackward0")


def maximum(input, other) -> Tensor:
    """Elementwise maximum of `input` and `other`, broadcast and promoted; NaN propagates.

    >>> em.maximum(em.tensor([1, 5]), em.tensor([3.0, 2.0]))
    tensor([3., 5.])
    """
    return _apply(Op.MAX, (input, other), "MaximumBackward0")


def minimum(input, other) -> Tensor:
    """Elementwise minimum of `input` and `other`, broadcast and promoted; NaN propagates.

    >>> em.minimum(em.tensor([1, 5]), em.tensor([3.0, 2.0]))
    tensor([1., 2.])
    """
    return _apply(Op.MIN, (input, other), "MinimumBackward0")


def clamp(input, min=None, max=None) -> Tensor:
    """Clamp into [min, max] (min(max(x, min), max)); the gradient flows where
    min <= input <= max, NaN stays NaN with gradient 0, as in PyTorch.

    `min` and `max` are numbers or tensors (broadcast with input); at least one is
    given. `em.clip` is an alias of `em.clamp`.

    >>> em.clamp(em.tensor([-2.0, 0.5, 3.0]), min=0.0, max=1.0)
    tensor([0.0000, 0.5000, 1.0000])
    """
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    operands = [input] + [v for v in (min, max) if v is not None]
    tracked = current().grad_enabled and any(
        isinstance(o, Tensor) and o._requires_grad for o in operands)
    return _clamp(operands, min is not None, max is not None, tracked)


def clamp_graded(input, min=None, max=None, *, stops: list) -> Tensor:
    """`clamp` built so that its gradient is PyTorch's whatever the grad mode: what an
    in-place `clamp_` that autograd records writes (its build runs without grad, so
    the nodes its record must stop at are appended to `stops`)."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    return _clamp([input] + [v for v in (min, max) if v is not None], min is not None,
                  max is not None, True, stops)


clamp_graded.__name__ = "clamp"


def _clamp(operands, has_min: bool, has_max: bool, tracked: bool,
           stops: list | None = None) -> Tensor:
    """clamp of operands (input, then the bounds given); `tracked`: the gradient's form.

    Tracked, the value is routed by `where` so that the gradient is PyTorch's: the
    input gets it where min <= input <= max (1 at a bound, not maximum's 1/2 at a
    tie), a tensor min where input < min < max, a tensor max where input > max or
    max < min; nothing else gets it (a NaN input or bound, min == max < input).
    There the value is min(max(x, min), max), a node the gradient stops at.
    """
    stops = [] if stops is None else stops

    def build(x, *bounds):
        lo = bounds[0] if has_min else None
        hi = bounds[-1] if has_max else None
        # NOTE: the bound first: of two equal operands (-0.0 and a bound 0.0) MAX and MIN
        # give the second, as NumPy's maximum and minimum do, and torch's clamp keeps x
        v = x if lo is None else node(Op.MAX, (lo, x))
        v = v if hi is None else node(Op.MIN, (hi, v))
        if not tracked or not x.dtype.is_floating_point:
            return v
        stops.append(v)
        inside = None
        if hi is not None:
            inside = node(Op.LE, (x, hi))
        if lo is not None:
            low_ok = node(Op.LE, (lo, x))
            inside = low_ok if inside is None else node(Op.AND, (inside, low_ok))
        rest = v
        if hi is not None and hi.op is not Op.CONST:
            hi_wins, hi_value = node(Op.LT, (hi, x)), hi
            if lo is not None:
                hi_wins = node(Op.OR, (hi_wins, node(Op.LT, (hi, lo))))
                # NOTE: max < min wins even over a NaN input, whose value stays NaN
                nan = b.where(node(Op.NE, (x, x)), b.like(x, math.nan), b.like(x, 0))
                hi_value = node(Op.ADD, (hi, nan))
            rest = b.where(hi_wins, hi_value, rest)
        if lo is not None and lo.op is not Op.CONST:
            lo_wins = node(Op.LT, (x, lo))
            if hi is not None:
                lo_wins = node(Op.AND, (lo_wins, node(Op.LT, (lo, hi))))
            rest = b.where(lo_wins, lo, rest)
        return b.where(inside, x, rest)
    return _apply(Op.WHERE, operands, clamp_name(operands[1:]), build=build, stops=stops)


def clamp_name(bounds) -> str:
    """PyTorch's record name for clamp: ClampBackward1 by numbers, 0 by a tensor."""
    return "ClampBackward0" if any(isinstance(v, Tensor) for v in bounds) else "ClampBackward1"


clip = clamp


def where(condition, input, other) -> Tensor:
    """`input` where condition holds, else `other` (broadcast together); the one-argument
    form `em.where(condition)` is `nonzero(condition, as_tuple=True)` (tracer/indexing.py)."""
    cond = as_operand(condition, "condition")
    if not isinstance(cond, Tensor) or cond.dtype is not dt.bool_:
        got = cond.dtype if isinstance(cond, Tensor) else type(cond).__name__
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a "
                           f"tensor with dtype {got}")
    x, y = as_operand(input), as_operand(other)
    dtype = _dtype_of([x, y])
    tensors = tuple(t for t in (cond, x, y) if isinstance(t, Tensor))
    device = common_device(tensors)
    shape = broadcast_shapes(*(t.shape for t in tensors))
    raws = dict(zip(map(id, tensors), distinct_nodes(tensors, tuple(t.node for t in tensors))))
    c = b.expand_to(raws[id(cond)], shape)
    nx = _operand(x, raws.get(id(x)) if isinstance(x, Tensor) else None, dtype, shape)
    ny = _operand(y, raws.get(id(y)) if isinstance(y, Tensor) else None, dtype, shape)
    order, (c, nx, ny) = laid_out(tensors, (c, nx, ny), tuple(raws.values()))
    return result(b.where(c, nx, ny), tensors, "WhereBackward0",
                  tuple(raws[id(t)] for t in tensors), device, order=order)


def lerp(input, end, weight) -> Tensor:
    """Linear interpolation `input + weight * (end - input)`, broadcast and promoted.

    Args:
        input (Tensor): the start points.
        end (Tensor): the end points.
        weight (float or Tensor): the fraction of the way from `input` to `end`.

    `input` is a float tensor; `end` (and a tensor `weight`) has its dtype, as PyTorch
    requires. As PyTorch, the result is `end - (end - input) * (1 - weight)` where
    |weight| >= 0.5 (exact at weight 1).

    >>> em.lerp(em.tensor([0.0, 10.0]), em.tensor([10.0, 20.0]), 0.5)
    tensor([ 5., 15.])
    """
    x, e, w = as_operand(input), as_operand(end), as_operand(weight)
    if not isinstance(x, Tensor) or not isinstance(e, Tensor):
        raise TypeError("lerp(): argument 'input' and 'end' must be Tensors")
    if not x.dtype.is_floating_point:
        raise NotImplementedError(f'"lerp_kernel_scalar" not implemented for '
                                  f"'{_TORCH_KERNEL_NAME[x.dtype.name]}'")
    for what, t in (("end", e), ("weight", w)):
        if isinstance(t, Tensor) and t.dtype is not x.dtype:
            raise RuntimeError(f"expected dtype {_C10_NAME[x.dtype.name]} for `{what}` but got "
                               f"dtype {_C10_NAME[t.dtype.name]}")

    def build(a, z, t):
        # NOTE: PyTorch's a + t * (z - a) where |t| < 0.5, else z - (z - a) * (1 - t),
        # written as one sum start + step * (z - a) (the same bits: t - 1 is exactly
        # -(1 - t)), so that the gradients are g * (1 - t), g * t and g * (z - a) even
        # where t is infinite (a `where` of two whole formulas would give NaN there)
        small = node(Op.LT, (node(Op.ABS, (t,)), b.like(t, 0.5)))
        start = b.where(small, a, z)
        step = b.where(small, t, node(Op.SUB, (t, b.like(t, 1))))
        return node(Op.ADD, (start, node(Op.MUL, (step, node(Op.SUB, (z, a))))))
    name = "LerpBackward1" if isinstance(w, Tensor) else "LerpBackward0"
    return _apply(Op.WHERE, (x, e, w), name, build=build)


# PyTorch's names of dtypes in kernel errors and in c10's type checks
_TORCH_KERNEL_NAME = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char",
                      "uint8": "Byte", "bool": "Bool", "float32": "Float", "float64": "Double",
                      "float16": "Half", "bfloat16": "BFloat16"}
_C10_NAME = {"int64": "long int", "int32": "int", "int16": "short int", "int8": "signed char",
             "uint8": "unsigned char", "bool": "bool", "float32": "float", "float64": "double",
             "float16": "c10::Half", "bfloat16": "c10::BFloat16"}


# -- comparisons and logic --------------------------------------------------------

def _compare(op: Op, name: str, swap: bool = False):
    # NOTE: a swapped comparison (gt as LT) still lists input first: the result is laid
    # out as the first operand that is not row-major, as in torch (`x.T >= x`)
    build = (lambda a, c: node(op, (c, a))) if swap else None

    def fn(input, other) -> Tensor:
        return _apply(op, (input, other), name, out=dt.bool_, build=build)
    fn.__name__ = name
    fn.__doc__ = f"Elementwise `{name}` comparison (broadcast, promoted), a bool tensor."
    return fn


eq = _compare(Op.EQ, "eq")
ne = _compare(Op.NE, "ne")
lt = _compare(Op.LT, "lt")
le = _compare(Op.LE, "le")
gt = _compare(Op.LT, "gt", swap=True)
ge = _compare(Op.LE, "ge", swap=True)


def _as_bool(x: Node) -> Node:
    return x if x.dtype is dt.bool_ else node(Op.NE, (x, b.like(x, 0)))


def _logical(op: Op, name: str):
    def fn(input, other) -> Tensor:
        return _apply(op, (input, other), name, out=dt.bool_,
                      build=lambda x, y: node(op, (_as_bool(x), _as_bool(y))))
    fn.__name__ = name
    return fn


logical_and = _logical(Op.AND, "logical_and")
logical_or = _logical(Op.OR, "logical_or")
logical_xor = _logical(Op.XOR, "logical_xor")

_LOGICAL_DOC = """Elementwise logical {what} of `input` and `other` (nonzero is True).

    The operands broadcast together; the result is a bool tensor of their broadcast shape.

    >>> em.{name}(em.tensor([0, 1, 2]), em.tensor([0, 0, 3]))
    {example}
    """
logical_and.__doc__ = _LOGICAL_DOC.format(what="AND", name="logical_and",
                                          example="tensor([False, False,  True])")
logical_or.__doc__ = _LOGICAL_DOC.format(what="OR", name="logical_or",
                                         example="tensor([False,  True,  True])")
logical_xor.__doc__ = _LOGICAL_DOC.format(what="XOR", name="logical_xor",
                                          example="tensor([False,  True, False])")


def logical_not(input) -> Tensor:
    """Elementwise logical NOT: a bool tensor of input's shape, True where input is zero.

    >>> em.logical_not(em.tensor([0, 3]))
    tensor([ True, False])
    """
    return _apply(Op.NOT, (input,), "logical_not", out=dt.bool_,
                  build=lambda x: node(Op.NOT, (_as_bool(x),)))


def _bitwise(op: Op, name: str):
    def fn(input, other=None) -> Tensor:
        operands = [as_operand(x) for x in ((input,) if op is Op.NOT else (input, other))]
        for x in operands:
            d = x.dtype if isinstance(x, Tensor) else dt.scalar_dtype(x)
            if d.is_floating_point:
                raise RuntimeError(f"{name} is only supported for integer and bool tensors, "
                                   f"got {d}")
        return _apply(op, operands, name)
    fn.__name__ = name
    return fn


bitwise_and = _bitwise(Op.AND, "bitwise_and")
bitwise_or = _bitwise(Op.OR, "bitwise_or")
bitwise_xor = _bitwise(Op.XOR, "bitwise_xor")
bitwise_not = _bitwise(Op.NOT, "bitwise_not")

_BITWISE_DOC = """Elementwise bitwise {what} of integer or bool tensors (floats are refused).

    The operands broadcast and promote together; bools give logical {what}.
    The operator `{operator}` calls this function.

    >>> em.{name}(em.tensor([12, 10]), 6)
    {example}
    """
bitwise_and.__doc__ = _BITWISE_DOC.format(what="AND", operator="&", name="bitwise_and",
                                          example="tensor([4, 2])")
bitwise_or.__doc__ = _BITWISE_DOC.format(what="OR", operator="|", name="bitwise_or",
                                         example="tensor([14, 14])")
bitwise_xor.__doc__ = _BITWISE_DOC.format(what="XOR", operator="^", name="bitwise_xor",
                                          example="tensor([10, 12])")
bitwise_not.__doc__ = """Elementwise bitwise NOT of an integer or bool tensor (`~input`).

    Bools give logical NOT; the result has input's shape and dtype.

    >>> em.bitwise_not(em.tensor([0, 5]))
    tensor([-1, -6])
    """


def _constant_like(x: Tensor, name: str, value: int) -> Tensor:
    """A bool tensor of x's shape holding `value`, laid out as x (PyTorch's
    `zeros_like(x, kBool)` for isnan/isinf/isfinite of an integer x)."""
    return _apply(Op.EQ, (x,), name, out=dt.bool_,
                  build=lambda n: b.full(value, dt.bool_, n.shape))


def isnan(input) -> Tensor:
    """A bool tensor of input's shape, True where an element is NaN (never for integers).

    >>> em.isnan(em.tensor([1.0, float("nan")]))
    tensor([False,  True])
    """
    x = as_operand(input)
    if not x.dtype.is_floating_point:
        return _constant_like(x, "isnan", 0)
    return _apply(Op.NE, (x,), "isnan", out=dt.bool_, build=lambda n: node(Op.NE, (n, n)))


def isfinite(input) -> Tensor:
    """A bool tensor of input's shape, True where an element is neither NaN nor +-inf.

    >>> em.isfinite(em.tensor([1.0, float("inf"), float("nan")]))
    tensor([ True, False, False])
    """
    x = as_operand(input)
    if not x.dtype.is_floating_point:
        return _constant_like(x, "isfinite", 1)
    return _apply(Op.EQ, (x,), "isfinite", out=dt.bool_, build=lambda n: node(
        Op.EQ, (node(Op.SUB, (n, n)), b.like(n, 0))))


def isinf(input) -> Tensor:
    """A bool tensor of input's shape, True where an element is +inf or -inf.

    >>> em.isinf(em.tensor([1.0, float("-inf")]))
    tensor([False,  True])
    """
    x = as_operand(input)
    if not x.dtype.is_floating_point:
        return _constant_like(x, "isinf", 0)
    return _apply(Op.EQ, (x,), "isinf", out=dt.bool_, build=lambda n: node(
        Op.EQ, (node(Op.ABS, (n,)), b.like(n, math.inf))))


def nan_to_num(input, nan: float = 0.0, posinf: float | None = None,
               neginf: float | None = None) -> Tensor:
    """Replace NaN, +inf and -inf by finite numbers (the dtype's extremes by default)."""
    x = as_operand(input)
    if not x.dtype.is_floating_point:
        return x.clone()
    info = np.finfo(x.dtype.np if x.dtype is not dt.bfloat16 else np.float32)
    hi = float(info.max) if posinf is None else posinf
    lo = float(info.min) if neginf is None else neginf
    if x.dtype is dt.bfloat16 and posinf is None:
        hi, lo = 3.3895313892515355e38, -3.3895313892515355e38

    def build(n):
        n2 = b.where(node(Op.NE, (n, n)), b.like(n, nan), n)
        n2 = b.where(node(Op.EQ, (n, b.like(n, math.inf))), b.like(n, hi), n2)
        return b.where(node(Op.EQ, (n, b.like(n, -math.inf))), b.like(n, lo), n2)
    return _apply(Op.WHERE, (x,), "NanToNumBackward0", build=build)


# -- Tensor methods and operators: `t.add(y)` is `add(t, y)`, `t + y` too -------------

for _name in __all__:
    if _name not in ("broadcast_shapes", "as_operand", "where", "laid_out", "memory_order"):
        setattr(Tensor, _name, globals()[_name])


def _where_method(self, condition, other):
    """Method form of `em.where`: `self.where(condition, other)` is
    `em.where(condition, self, other)`, self where condition holds, else other.

    >>> em.tensor([1.0, 2.0, 3.0]).where(em.tensor([True, False, True]), 0.0)
    tensor([1., 0., 3.])
    """
    return where(condition, self, other)


def _swap(fn):
    def reflected(self, other):
        return fn(other, self)
    return reflected


_OPERATORS = {
    "__add__": add, "__radd__": _swap(add), "__sub__": sub, "__rsub__": _swap(sub),
    "__mul__": mul, "__rmul__": _swap(mul), "__truediv__": div, "__rtruediv__": _swap(div),
    "__floordiv__": floor_divide, "__rfloordiv__": _swap(floor_divide),
    "__mod__": remainder, "__rmod__": _swap(remainder),
    "__pow__": pow, "__rpow__": _swap(pow),
    "__and__": bitwise_and, "__rand__": _swap(bitwise_and),
    "__or__": bitwise_or, "__ror__": _swap(bitwise_or),
    "__xor__": bitwise_xor, "__rxor__": _swap(bitwise_xor),
    "__eq__": eq, "__ne__": ne, "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
    "__neg__": neg, "__abs__": abs, "__invert__": bitwise_not,
    "__pos__": lambda self: self,
    "__hash__": lambda self: id(self),  # __eq__ is elementwise, identity hashes
    "where": _where_method,
}
for _name, _fn in _OPERATORS.items():
    setattr(Tensor, _name, _fn)
