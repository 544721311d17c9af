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
ARGSORT        (axis, descending): a stable sort's indices, int64
SCATTER_REDUCE (axis, kind, include_self): as SCATTER_ADD, combining by "prod", "amax"
               or "amin"; without include_self the written positions start from none
CUMSUM         axis
SCAN           (axis, kind): a running "prod", "max", "min" or "logsumexp" along axis
=============  ============================================================

`OPINFO` holds one row per Op: its kind (what it computes), arity, placement
(where fusion puts it: a leaf, a kernel statement, a view step or an extern
step) and whether it is differentiable. The op groups below (UNARY, ...,
EXTERN, FUSIBLE) are derived from it; fusion and the code generators read it.

How to add an Op
----------------
Each table has one row per Op; a new Op adds one row to each:

1. `Op` (here): the member, in its group, and its `arg` convention above.
2. `OPINFO` (here): `Op.X: OpInfo(OpKind..., arity, Placement..., differentiable)`.
3. `INFER` (ir/node.py): shape and dtype inference, `rule(inputs, arg) ->
   (dtype, shape)`; UNARY, BINARY, COMPARISON and REDUCE ops get theirs from
   their kind.
4. `IMPL` (runtime/interpreter.py): the reference semantics, `rule(node,
   *input_arrays) -> array` (cast to the node's dtype and rounded afterwards).
5. `VJP` (ir/passes/autodiff.py): `rule(node, cotangent) -> [cotangent or None
   per input]`; may be left out where `differentiable` is False.
6. `RULES` (codegen/numpy_gen.py), in the form the placement asks for: a
   KERNEL op a statement rule (`_uf("ufunc_name")` for a plain NumPy ufunc,
   else `Rule(fn)` with `fn(gen, stmt, args)`), a VIEW op (and every MOVEMENT
   op) a view rule `Rule(view=...)`, an EXTERN op a step rule
   (`Rule(step=_extern_step)` runs IMPL's rule on the program's arrays).
7. Tests: tests/test_op_tables.py checks 2-6 for every Op (and names the Op
   and the table that lacks it); test the values against torch in
   tests/test_ops.py and tests/test_compiled_ops.py.

An Op written in the older style moves over row by row: its entry in a group
set (UNARY = {...}, EXTERN = {...}) becomes its OPINFO row; in the NumPy
generator, a UFUNC entry `Op.X: "name"` becomes `Op.X: _uf("name")`, an
`elif op is Op.X:` branch a rule function, an EXTERN_OPS member
`Rule(step=_extern_step)` and a VIEW template `Rule(view=_template("..."))`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum, auto

__all__ = ["Op", "OPINFO", "OpInfo", "OpKind", "Placement", "UNARY", "BINARY", "MOVEMENT",
           "REDUCE", "SOURCE", "EXTERN", "FUSIBLE", "COMPARISON", "ELEMENTWISE"]


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
    NOT = auto()
    CAST = auto()
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
    ATAN2 = auto()
    HYPOT = auto()
    COPYSIGN = auto()
    FMOD = auto()
    SHL = auto()
    SHR = auto()
    SCAN = auto()
    SCATTER_REDUCE = auto()
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
    # library routines: not fused, executed by a library call
    TAKE = auto()
    SCATTER = auto()
    SCATTER_ADD = auto()
    ARGSORT = auto()
    CUMSUM = auto()

    def __repr__(self) -> str:
        return f"Op.{self.name}"

    # NOTE: members are singletons; identity hashing keeps node keys cheap.
    __hash__ = object.__hash__


class OpKind(StrEnum):
    """What an Op computes, by the shape of its rule (arity and output)."""

    SOURCE = "source"            # no inputs
    UNARY = "unary"              # elementwise, one input, its dtype
    BINARY = "binary"            # elementwise, two inputs, promoted dtype
    COMPARISON = "comparison"    # elementwise, two inputs, bool
    TERNARY = "ternary"          # elementwise WHERE: condition, then, else
    MOVEMENT = "movement"        # a view of its input (no compute)
    REDUCE = "reduce"            # a reduction over axes (keepdim)
    MATMUL = "matmul"            # a contraction
    LIBRARY = "library"          # a whole-array routine: gather, scatter, write, sort, scan


class Placement(StrEnum):
    """Where fusion puts an Op's node, and so how the code generators emit it."""

    LEAF = "leaf"        # no step: kernels read buffers and inline constants
    KERNEL = "kernel"    # a member of a fused kernel (a statement of it)
    VIEW = "view"        # a view step of its own (a strided view of a stored value)
    EXTERN = "extern"    # a step of its own, computed by the interpreter's rule


@dataclass(frozen=True)
class OpInfo:
    """The properties of one Op that passes and code generators derive from.

    `arity`: the number of inputs; `differentiable`: whether a gradient flows
    through it (False: its VJP rule, if any, gives None for every input).
    """

    kind: OpKind
    arity: int
    placement: Placement
    differentiable: bool

    @property
    def fusible(self) -> bool:
        """Whether a node of this op may be a member of a kernel."""
        return self.placement is Placement.KERNEL

    @property
    def extern(self) -> bool:
        """Whether a node of this op is a step of its own, run by a library call."""
        return self.placement is Placement.EXTERN

    @property
    def elementwise(self) -> bool:
        return self.kind in _ELEMENTWISE_KINDS


_ELEMENTWISE_KINDS = frozenset({OpKind.UNARY, OpKind.BINARY, OpKind.COMPARISON,
                                OpKind.TERNARY})

# NOTE: one row per Op; the names below are derived from it, never listed by hand.
OPINFO: dict[Op, OpInfo] = {
    #                   kind          arity  placement      differentiable
    Op.BUFFER:       OpInfo(OpKind.SOURCE,     0, Placement.LEAF,   False),
    Op.CONST:        OpInfo(OpKind.SOURCE,     0, Placement.LEAF,   False),
    Op.RAND:         OpInfo(OpKind.SOURCE,     0, Placement.EXTERN, False),
    Op.ARANGE:       OpInfo(OpKind.SOURCE,     0, Placement.EXTERN, False),
    Op.NEG:          OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.EXP:          OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.LOG:          OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.SIN:          OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.COS:          OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.TAN:          OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.TANH:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.SQRT:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ABS:          OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.SIGN:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.FLOOR:        OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.CEIL:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ROUND:        OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.TRUNC:        OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.LOG1P:        OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.EXPM1:        OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.EXP2:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.RECIP:        OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.NOT:          OpInfo(OpKind.UNARY,      1, Placement.KERNEL, False),
    Op.CAST:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ERF:          OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ERFC:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ERFINV:       OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ASIN:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ACOS:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ATAN:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.SINH:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.COSH:         OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ASINH:        OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ACOSH:        OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ATANH:        OpInfo(OpKind.UNARY,      1, Placement.KERNEL, True),
    Op.ATAN2:        OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.HYPOT:        OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.COPYSIGN:     OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.FMOD:         OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.SHL:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, False),
    Op.SHR:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, False),
    Op.ADD:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.SUB:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.MUL:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.DIV:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.POW:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.MAX:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.MIN:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.LT:           OpInfo(OpKind.COMPARISON, 2, Placement.KERNEL, False),
    Op.LE:           OpInfo(OpKind.COMPARISON, 2, Placement.KERNEL, False),
    Op.EQ:           OpInfo(OpKind.COMPARISON, 2, Placement.KERNEL, False),
    Op.NE:           OpInfo(OpKind.COMPARISON, 2, Placement.KERNEL, False),
    Op.AND:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, False),
    Op.OR:           OpInfo(OpKind.BINARY,     2, Placement.KERNEL, False),
    Op.XOR:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, False),
    Op.FLOORDIV:     OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.MOD:          OpInfo(OpKind.BINARY,     2, Placement.KERNEL, True),
    Op.WHERE:        OpInfo(OpKind.TERNARY,    3, Placement.KERNEL, True),
    Op.RESHAPE:      OpInfo(OpKind.MOVEMENT,   1, Placement.VIEW,   True),
    Op.PERMUTE:      OpInfo(OpKind.MOVEMENT,   1, Placement.VIEW,   True),
    Op.EXPAND:       OpInfo(OpKind.MOVEMENT,   1, Placement.KERNEL, True),
    Op.SLICE:        OpInfo(OpKind.MOVEMENT,   1, Placement.VIEW,   True),
    Op.FLIP:         OpInfo(OpKind.MOVEMENT,   1, Placement.VIEW,   True),
    Op.AS_STRIDED:   OpInfo(OpKind.MOVEMENT,   1, Placement.VIEW,   True),
    Op.WRITE:        OpInfo(OpKind.LIBRARY,    2, Placement.EXTERN, True),
    Op.REDUCE_SUM:   OpInfo(OpKind.REDUCE,     1, Placement.KERNEL, True),
    Op.REDUCE_PROD:  OpInfo(OpKind.REDUCE,     1, Placement.KERNEL, True),
    Op.REDUCE_MAX:   OpInfo(OpKind.REDUCE,     1, Placement.KERNEL, True),
    Op.REDUCE_MIN:   OpInfo(OpKind.REDUCE,     1, Placement.KERNEL, True),
    Op.MATMUL:       OpInfo(OpKind.MATMUL,     2, Placement.KERNEL, True),
    Op.TAKE:         OpInfo(OpKind.LIBRARY,    2, Placement.EXTERN, True),
    Op.SCATTER:      OpInfo(OpKind.LIBRARY,    3, Placement.EXTERN, True),
    Op.SCATTER_ADD:  OpInfo(OpKind.LIBRARY,    3, Placement.EXTERN, True),
    Op.ARGSORT:      OpInfo(OpKind.LIBRARY,    1, Placement.EXTERN, False),
    Op.CUMSUM:       OpInfo(OpKind.LIBRARY,    1, Placement.EXTERN, True),
    Op.SCAN:         OpInfo(OpKind.LIBRARY,    1, Placement.EXTERN, True),
    Op.SCATTER_REDUCE: OpInfo(OpKind.LIBRARY,  3, Placement.EXTERN, True),
}


def _ops(kind: OpKind) -> frozenset:
    return frozenset(op for op, info in OPINFO.items() if info.kind is kind)


SOURCE = _ops(OpKind.SOURCE)
UNARY = _ops(OpKind.UNARY)
COMPARISON = _ops(OpKind.COMPARISON)
BINARY = _ops(OpKind.BINARY) | COMPARISON
ELEMENTWISE = frozenset(op for op, info in OPINFO.items() if info.elementwise)
MOVEMENT = _ops(OpKind.MOVEMENT)
REDUCE = _ops(OpKind.REDUCE)
# ops a kernel may hold (EXPAND only where its input is in the kernel: else a view)
FUSIBLE = frozenset(op for op, info in OPINFO.items() if info.fusible)
# ops run as steps of their own by the interpreter's rule (fusion's and the code
# generators' one meaning of "extern")
EXTERN = frozenset(op for op, info in OPINFO.items() if info.extern)
