"""The primitive operation set, in one enum with groups.

The set is small and orthogonal: every user-facing operation (mean, softmax,
relu, sub-tensor writes, indexing, ...) is composed from these in tracer/, so
shape inference, the reference interpreter, the VJP rules and the code
generators each need one rule per member here and nothing else.

`arg` conventions (the static data a Node carries):

=============  ============================================================
BUFFER         int: the uid of a runtime buffer (a realised storage)
CONST          the Python value (bool, int or float)
RAND           (seed, sequence number, stream): uniform [0, 1) as float64
ARANGE         (start, step): start + step * i along the only axis
unary, binary  None
CAST           None (the node's dtype is the target)
RESHAPE        the new shape
PERMUTE        the order of the input's axes
EXPAND         the new shape (same ndim; only size-1 dims grow)
SLICE          tuple of (start, stop, step) per axis, step > 0, clamped
FLIP           tuple of axes
AS_STRIDED     a View over the 1-D input
WRITE          a View over the 1-D first input; the second input is written there
REDUCE_*       tuple of axes (the output keeps them with size 1)
MATMUL         None: inputs (..., m, k) and (..., k, n) with equal batch dims
TAKE           axis: out = x.shape[:axis] + idx.shape + x.shape[axis+1:]
SCATTER[_ADD]  axis: inputs (dest, idx, src), src shaped as TAKE's output
SCATTER_REDUCE (axis, kind, include_self): as SCATTER_ADD, combining by "prod", "amax"
               or "amin"; without include_self the written positions start from none
ARGSORT        (axis, descending): a stable sort's indices, int64
CUMSUM         axis
SCAN           (axis, kind): a running "prod", "max", "min" or "logsumexp" along axis
=============  ============================================================
"""

from __future__ import annotations

from enum import Enum, auto

__all__ = ["Op", "UNARY", "BINARY", "MOVEMENT", "REDUCE", "SOURCE", "EXTERN",
           "COMPARISON", "ELEMENTWISE"]


class Op(Enum):
    # sources
    BUFFER = auto()
    CONST = auto()
    RAND = auto()
    ARANGE = auto()
    # unary elementwise
    NEG = auto()
    EXP = auto()
    LOG = auto()
    SIN = auto()
    COS = auto()
    TAN = auto()
    TANH = auto()
    SQRT = auto()
    ABS = auto()
    SIGN = auto()
    FLOOR = auto()
    CEIL = auto()
    ROUND = auto()
    TRUNC = auto()
    LOG1P = auto()
    EXPM1 = auto()
    EXP2 = auto()
    RECIP = auto()
    ERF = auto()
    ERFC = auto()
    ERFINV = auto()
    ASIN = auto()
    ACOS = auto()
    ATAN = auto()
    SINH = auto()
    COSH = auto()
    ASINH = auto()
    ACOSH = auto()
    ATANH = auto()
    NOT = auto()
    CAST = auto()
    # binary elementwise
    ADD = auto()
    SUB = auto()
    MUL = auto()
    DIV = auto()
    POW = auto()
    MAX = auto()
    MIN = auto()
    LT = auto()
    LE = auto()
    EQ = auto()
    NE = auto()
    AND = auto()
    OR = auto()
    XOR = auto()
    FLOORDIV = auto()
    MOD = auto()
    ATAN2 = auto()
    HYPOT = auto()
    COPYSIGN = auto()
    FMOD = auto()
    SHL = auto()
    SHR = auto()
    # ternary
    WHERE = auto()
    # movement
    RESHAPE = auto()
    PERMUTE = auto()
    EXPAND = auto()
    SLICE = auto()
    FLIP = auto()
    AS_STRIDED = auto()
    WRITE = auto()
    # reductions (keepdim)
    REDUCE_SUM = auto()
    REDUCE_PROD = auto()
    REDUCE_MAX = auto()
    REDUCE_MIN = auto()
    # contraction
    MATMUL = auto()
    # extern: not fused, executed by a library call
    TAKE = auto()
    SCATTER = auto()
    SCATTER_ADD = auto()
    ARGSORT = auto()
    CUMSUM = auto()
    SCAN = auto()
    SCATTER_REDUCE = auto()

    def __repr__(self) -> str:
        return f"Op.{self.name}"

    # NOTE: members are singletons; identity hashing keeps node keys cheap.
    __hash__ = object.__hash__


SOURCE = frozenset({Op.BUFFER, Op.CONST, Op.RAND, Op.ARANGE})
UNARY = frozenset({Op.NEG, Op.EXP, Op.LOG, Op.SIN, Op.COS, Op.TAN, Op.TANH, Op.SQRT,
                   Op.ABS, Op.SIGN, Op.FLOOR, Op.CEIL, Op.ROUND, Op.TRUNC, Op.LOG1P,
                   Op.EXPM1, Op.EXP2, Op.RECIP, Op.NOT, Op.CAST, Op.ERF, Op.ERFC,
                   Op.ERFINV, Op.ASIN, Op.ACOS, Op.ATAN, Op.SINH, Op.COSH, Op.ASINH,
                   Op.ACOSH, Op.ATANH})
COMPARISON = frozenset({Op.LT, Op.LE, Op.EQ, Op.NE})
BINARY = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAX, Op.MIN, Op.AND,
                    Op.OR, Op.XOR, Op.FLOORDIV, Op.MOD, Op.ATAN2, Op.HYPOT, Op.COPYSIGN,
                    Op.FMOD, Op.SHL, Op.SHR}) | COMPARISON
ELEMENTWISE = UNARY | BINARY | {Op.WHERE}
MOVEMENT = frozenset({Op.RESHAPE, Op.PERMUTE, Op.EXPAND, Op.SLICE, Op.FLIP,
                      Op.AS_STRIDED})
REDUCE = frozenset({Op.REDUCE_SUM, Op.REDUCE_PROD, Op.REDUCE_MAX, Op.REDUCE_MIN})
EXTERN = frozenset({Op.TAKE, Op.SCATTER, Op.SCATTER_ADD, Op.ARGSORT, Op.CUMSUM, Op.SCAN,
                    Op.SCATTER_REDUCE})
