"""NumPy code generator: a `Program` to the source text of one Python module.

The module defines one function per kernel and a driver, `program(inputs,
params)`, that allocates buffers, calls the kernels and view/extern steps in
order, and returns the outputs. The runtime `exec`s it once (see
runtime/compiled.py for the names the source expects: `np`, `dt`, `Op`, `View`,
`_extern`, `_strided`, `_write`, `_bf16`, `_bf16_`, `_tiles`, `_Stub`, `_int_pow`,
`_check_divisor`, `_float_mod`, `_erf`, `_erfc`, `_erfinv`).

A kernel runs in one of two forms:

* direct (small or untileable domains): one NumPy call per statement on whole
  arrays, temporaries allocated by NumPy, results written with `out=`;
* tiled: a `<name>_tile(lo, hi, ..., s)` function evaluates the statements on
  the slice [lo, hi) of the tile axis with every temporary in a preallocated
  scratch array (`s`, reused across tiles, calls and in place where a ufunc's
  output may overwrite its input), and `_tiles` runs the tiles on a small
  thread pool. MATMULs run whole before the tiles.

Each statement reproduces the reference interpreter's rule exactly (same NumPy
function on the same operand dtypes, then the same cast and bfloat16 rounding),
so results are bit-identical wherever the operation order is the same.
`EMIT`/`UFUNC` hold one rule per Op; a test checks that every Op has one.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir import dtypes as dt
from ..ir.ops import Op
from ..ir.passes.fusion import TILE_ELEMS
from .kernel import Kernel, Program, Ref, Stmt

__all__ = ["EXTERN_OPS", "SPECIAL", "UFUNC", "VIEW", "covered_ops", "emit"]

UFUNC = {
    Op.NEG: "negative", Op.EXP: "exp", Op.LOG: "log", Op.SIN: "sin", Op.COS: "cos",
    Op.TAN: "tan", Op.TANH: "tanh", Op.SQRT: "sqrt", Op.ABS: "absolute", Op.SIGN: "sign",
    Op.FLOOR: "floor", Op.CEIL: "ceil", Op.TRUNC: "trunc", Op.LOG1P: "log1p",
    Op.EXPM1: "expm1", Op.EXP2: "exp2", Op.RECIP: "reciprocal",
    Op.ADD: "add", Op.SUB: "subtract", Op.MUL: "multiply", Op.DIV: "true_divide",
    Op.POW: "power", Op.MAX: "maximum", Op.MIN: "minimum", Op.LT: "less",
    Op.LE: "less_equal", Op.EQ: "equal", Op.NE: "not_equal", Op.AND: "bitwise_and",
    Op.OR: "bitwise_or", Op.XOR: "bitwise_xor", Op.FLOORDIV: "floor_divide",
    Op.MOD: "remainder",
    Op.ASIN: "arcsin", Op.ACOS: "arccos", Op.ATAN: "arctan", Op.SINH: "sinh", Op.COSH: "cosh",
    Op.ASINH: "arcsinh", Op.ACOSH: "arccosh", Op.ATANH: "arctanh", Op.ATAN2: "arctan2",
    Op.HYPOT: "hypot", Op.COPYSIGN: "copysign", Op.FMOD: "fmod", Op.SHL: "left_shift",
    Op.SHR: "right_shift",
}
# kernel statements with a rule of their own (below, in `_Kernel.stmt`)
SPECIAL = {Op.ROUND, Op.NOT, Op.CAST, Op.WHERE, Op.EXPAND, Op.REDUCE_SUM, Op.REDUCE_PROD,
           Op.REDUCE_MAX, Op.REDUCE_MIN, Op.MATMUL}
# functions NumPy lacks, in runtime/special.py (float64 in, float64 out)
SPECIAL_FN = {Op.ERF: "_erf", Op.ERFC: "_erfc", Op.ERFINV: "_erfinv"}
SPECIAL |= set(SPECIAL_FN)
REDUCER = {Op.REDUCE_SUM: "add", Op.REDUCE_PROD: "multiply", Op.REDUCE_MAX: "maximum",
           Op.REDUCE_MIN: "minimum"}
# one-element kernels compute on NumPy scalars (a ufunc on a scalar costs a third
# of one on a 0-d array); these ops, on operands of their own float dtype, are
# written as Python operators, which NumPy's float scalars round exactly as the
# ufuncs do (IEEE arithmetic)
OPERATOR = {"np.add": "({} + {})", "np.subtract": "({} - {})", "np.multiply": "({} * {})",
            "np.true_divide": "({} / {})", "np.negative": "(-{})"}
_INT_DIVIDES = {Op.FLOORDIV, Op.MOD, Op.FMOD}  # an integer divisor of 0 raises
_SCALAR_OPS = set(UFUNC) | {Op.EXPAND, Op.NOT}
_SCALAR_DTYPES = {np.dtype(np.float32), np.dtype(np.float64)}
# NumPy's SIMD loops for these take two contiguous arrays; with a scalar operand
# they fall back to a loop 1.7x slower (64K float32: 16 us against 9.6 us), so a
# tiled kernel passes the constant as an array filled once (same bits: checked
# by the tests against the interpreter)
_FILL_CONST = {Op.MAX, Op.MIN}
# NumPy's default ufunc buffer (elements; the generated code sets another with
# `np.setbufsize`). An elementwise op with an operand broadcast along the last axis
# (x - rowmax, e * (1 / rowsum)) runs through buffers of this size, copying the
# broadcast operand out chunk by chunk; with a buffer no longer than one row it
# runs row by row on NumPy's scalar-operand SIMD loop instead (a 128x1024 float32
# tile: 57 us -> 19 us). Elementwise results do not depend on the buffer size,
# nor do those of reductions that cast nothing; one that casts (a float16 sum in
# float32) adds in buffer-sized runs, so it always runs at the default. A kernel
# that needs one size throughout has its threads set it once per run of tiles
# (`_tiles(..., bufsize)`); otherwise its tile function switches around the casts.
DEFAULT_BUFSIZE = 8192
# view steps: Op -> source template ({x} the operand, {a} the arg)
VIEW = {
    Op.RESHAPE: "{x}.reshape({a})",
    Op.PERMUTE: "np.transpose({x}, {a})",
    Op.EXPAND: "np.broadcast_to({x}, {a})",
    Op.SLICE: "{x}[{a}]",
    Op.FLIP: "np.flip({x}, {a})",
    Op.AS_STRIDED: "_strided({x}, {a})",
}
# run through the reference interpreter's rule (`_extern`)
EXTERN_OPS = {Op.TAKE, Op.SCATTER, Op.SCATTER_ADD, Op.ARGSORT, Op.CUMSUM, Op.WRITE, Op.RAND,
              Op.ARANGE, Op.SCAN, Op.SCATTER_REDUCE}


def covered_ops() -> set[Op]:
    """Every Op this generator has a rule for (BUFFER and CONST are leaves)."""
    return set(UFUNC) | SPECIAL | set(VIEW) | EXTERN_OPS | {Op.BUFFER, Op.CONST}


# ---------------------------------------------------------------------------
# literals

_DT_ATTR = {d: ("bool_" if d.name == "bool" else d.name) for d in dt.ALL_DTYPES}


def np_type(d: dt.DType) -> str:
    return {"bool": "np.bool_"}.get(d.np.name, f"np.{d.np.name}")


def dtype_ref(d: dt.DType) -> str:
    return f"dt.{_DT_ATTR[d]}"


def _py(v) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return f"float('{v}')"
    return repr(v)


def literal(value, d: dt.DType) -> str:
    """A NumPy scalar equal to the interpreter's CONST of `value` (bfloat16 rounded)."""
    a = np.array(value, dtype=d.np)
    if d is dt.bfloat16:
        a = dt.round_bf16(a).reshape(())
    return f"{np_type(d)}({_py(a.item())})"


def arg_src(v) -> str:
    """Source text that evaluates to the static arg `v`."""
    if isinstance(v, tuple):
        inner = ", ".join(arg_src(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, float):
        return _py(v)
    return repr(v)


def _first(shape) -> str:
    """The index of the element of a one-element array of `shape`."""
    return "()" if not shape else ", ".join("0" for _ in shape) + ","


def _index(axis: int, text: str) -> str:
    return "[" + ":, " * axis + text + "]"


def _natural(op: Op, dtypes) -> np.dtype:
    """The dtype NumPy's ufunc gives for operands of `dtypes` (the interpreter's result)."""
    return getattr(np, UFUNC[op]).resolve_dtypes(tuple(d.np for d in dtypes) + (None,))[-1]


_SQUARE_EXACT: dict = {}


def _square_is_exact(s: Stmt) -> bool:
    """Whether x ** 2.0 may be emitted as x * x (about 4x faster) without changing a bit.

    NOTE: that holds where the C library's powf/pow rounds x**2 exactly as the
    product rounds, ties included; checked once per process and dtype on every
    float whose low mantissa bits are zero (where ties are) and on random
    floats. float32 and float16 were also checked exhaustively on the reference
    machine; float64 is never rewritten.
    """
    c = s.srcs[1]
    if c.kind != "const" or float(c.index) != 2.0 or s.dtype.np not in (np.float32, np.float16):
        return False
    d = s.dtype.np
    if d not in _SQUARE_EXACT:
        bits = np.uint16 if d == np.float16 else np.uint32
        if d == np.float16:
            x = np.arange(1 << 16, dtype=bits).view(d)
        else:
            grid = (np.arange(1 << 20, dtype=np.uint32) << np.uint32(12)).view(d)
            rand = np.random.default_rng(0).integers(0, 1 << 32, 1 << 16,
                                                     dtype=np.uint64).astype(np.uint32).view(d)
            x = np.concatenate([grid, rand])
        with np.errstate(all="ignore"):
            a, b = np.power(x, np.broadcast_to(d.type(2), x.shape)), x * x
        same = (a.view(bits) == b.view(bits)) | (np.isnan(a) & np.isnan(b))
        _SQUARE_EXACT[d] = bool(same.all())
    return _SQUARE_EXACT[d]


def _acc(d: dt.DType) -> np.dtype:
    return np.dtype(np.float32) if d in (dt.float16, dt.bfloat16) else d.np


# ---------------------------------------------------------------------------
# kernels

class _Kernel:
    """Emits one kernel: direct when `tile` is None, else as a tile function."""

    def __init__(self, k: Kernel, tiled: bool, tile_rows: int):
        self.k = k
        self.tiled = tiled
        self.axis = k.tile_axis if tiled else None
        self.rows = tile_rows
        self.lines: list[str] = []
        self.names: dict[int, str] = {}  # statement id -> expression
        self.shapes: dict[int, tuple] = {}  # statement id -> its array's real shape
        self.stored = {sid: f"o{j}" for j, (sid, _) in enumerate(k.stores)}
        self.uses: dict[int, int] = {}  # statement id -> index of last statement reading it
        for s in k.body:
            for r in s.srcs:
                if r.kind == "local":
                    self.uses[r.index] = s.id
        self.scratch: list[tuple[tuple, str]] = []  # (shape, dtype) per scratch array
        self.free: dict[tuple, list[int]] = {}
        self.held: dict[int, int] = {}  # statement id -> scratch index
        self.pre = [s for s in k.body if s.op is Op.MATMUL] if tiled else []
        self.fills: dict[tuple, int] = {}  # (tile shape, dtype, literal) -> fill index
        self.bufsize = DEFAULT_BUFSIZE  # the ufunc buffer size the emitted lines leave set
        self.resized: list[int] = []  # the sizes lines set, in order
        self.casting = False  # whether a reduction casts (it must run at the default)
        self.scalar = False  # set by emit(): a one-element kernel on NumPy scalars

    # -- operands ----------------------------------------------------------------
    def tile_shape(self, shape) -> str:
        if self.axis is None:
            return repr(tuple(shape))
        parts = [("n" if a == self.axis else str(s)) for a, s in enumerate(shape)]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    def ref(self, r: Ref) -> str:
        if r.kind == "const":
            return literal(r.index, r.dtype)
        if r.kind == "load":
            return f"l{r.index}"
        return self.names[r.index]

    def actual(self, r: Ref) -> tuple:
        """The shape the operand's array really has (broadcasts are left implicit)."""
        if r.kind == "const":
            return ()
        if r.kind == "load":
            return tuple(self.load_shapes[r.index])
        return self.shapes[r.index]

    def full(self, r: Ref) -> str:
        """The operand as an array of its own (tile) shape, laid out as the interpreter's.

        NOTE: the interpreter's EXPAND and CONST values are broadcast views, any
        other value a fresh contiguous array; reductions and matmuls visit
        elements in an order that depends on the layout, so it is reproduced.
        """
        text = self.ref(r)
        if self.actual(r) == tuple(r.shape):
            return text
        view = f"np.broadcast_to({text}, {self.tile_shape(r.shape)})"
        if r.kind == "const" or self.k.body[r.index].op is Op.EXPAND:
            return view
        return f"np.ascontiguousarray({view})"

    # -- destinations --------------------------------------------------------------
    def dest(self, s: Stmt, reuse: tuple[Ref, ...] = ()) -> str | None:
        """Where statement s writes: its output tile, a scratch array, or None (direct)."""
        if self.scalar:
            return None
        if s.id in self.stored:
            o = self.stored[s.id]
            return o if self.axis is None else f"{o}{_index(self.axis, 'lo:hi')}"
        if not self.tiled:
            return None
        key = (tuple(s.shape), s.dtype.np.str)
        for r in reuse:  # NOTE: a ufunc may write over an operand of its exact shape
            if (r.kind == "local" and self.uses.get(r.index) == s.id
                    and r.index in self.held and r.shape == s.shape
                    and r.dtype.np == s.dtype.np and r.index not in self.stored):
                k = self.held.pop(r.index)
                self.held[s.id] = k
                return self._scratch_ref(k)
        pool = self.free.get(key)
        if pool:
            k = pool.pop()
        else:
            k = len(self.scratch)
            self.scratch.append((tuple(s.shape), s.dtype.np.str))
        self.held[s.id] = k
        return self._scratch_ref(k)

    def filled(self, r: Ref, shape) -> str:
        """A tile-shaped array of the constant r (made once, when the module loads)."""
        key = (tuple(shape), r.dtype.np.str, literal(r.index, r.dtype))
        j = self.fills.setdefault(key, len(self.fills))
        return f"f{j}"

    def _scratch_ref(self, k: int) -> str:
        return f"s{k}"  # bound at the top of the tile function

    def release(self, s: Stmt) -> None:
        for r in s.srcs:
            if r.kind == "local" and self.uses.get(r.index) == s.id and r.index in self.held:
                k = self.held.pop(r.index)
                shape, d = self.scratch[k]
                self.free.setdefault((shape, d), []).append(k)

    # -- statements ------------------------------------------------------------------
    def stmt(self, s: Stmt) -> None:
        self._stmt(s)
        name = self.names.get(s.id, "")
        if s.op is Op.EXPAND and s.id not in self.stored:
            self.shapes[s.id] = self.actual(s.srcs[0])
        elif name.startswith("t") and s.op not in REDUCER and s.op is not Op.MATMUL:
            # NOTE: a direct elementwise result broadcasts its operands only: it
            # may be smaller than its node's shape (an EXPAND upstream)
            shapes = [self.actual(r) for r in s.srcs]
            self.shapes[s.id] = tuple(np.broadcast_shapes(*shapes))
        else:
            self.shapes[s.id] = tuple(s.shape)

    def _stmt(self, s: Stmt) -> None:
        op = s.op
        if op is Op.EXPAND:
            self.names[s.id] = self.ref(s.srcs[0])
            if self.scalar:
                if s.id in self.stored:
                    self.lines.append(f"{self.stored[s.id]}[{_first(s.shape)}] = "
                                      f"{self.names[s.id]}")
                return
            if s.id in self.stored:
                dst = self.dest(s)
                self.lines.append(f"np.copyto({dst}, {self.names[s.id]})")
                self.names[s.id] = dst
            return
        if op is Op.MATMUL and s in self.pre:
            self.names[s.id] = f"m{s.id}"
            return
        args = [self.ref(r) for r in s.srcs]
        want = s.dtype.np
        if op is Op.POW and s.dtype.is_integer:
            self.assign(s, f"_int_pow({args[0]}, {args[1]})")
        elif op is Op.POW and s.arg is not None:
            self.assign(s, f"_elementwise_pow({args[0]}, {args[1]})")  # see the interpreter's
        elif op is Op.MOD and s.dtype.is_floating_point:
            # NOTE: torch's remainder, not NumPy's (the sign of a zero result differs)
            expr = f"_float_mod({args[0]}, {args[1]})"
            if _natural(op, [r.dtype for r in s.srcs]) != want:
                expr = f"np.asarray({expr}).astype({np_type(s.dtype)})"
            self.assign(s, expr)
        elif op is Op.POW and _square_is_exact(s):
            x = args[0]
            self.call(s, "np.multiply", [x, x], want, s.srcs[:1])
        elif op in UFUNC:
            fn = f"np.{UFUNC[op]}"
            if op in _INT_DIVIDES and s.dtype.is_integer and math.prod(s.shape):
                # NOTE: an integer divisor of zero raises, as the interpreter's rule does
                self.lines.append(f"_check_divisor({args[1]})")
            self.buffer_for(s)
            if op in _FILL_CONST and self.tiled:
                args = [self.filled(r, s.shape) if r.kind == "const" else a
                        for a, r in zip(args, s.srcs)]
            self.call(s, fn, args, _natural(op, [r.dtype for r in s.srcs]), s.srcs)
        elif op in SPECIAL_FN:
            expr = f"{SPECIAL_FN[op]}({args[0]})"
            self.assign(s, expr if want == np.float64 else f"{expr}.astype({np_type(s.dtype)})")
        elif op is Op.NOT:
            fn = "np.logical_not" if s.srcs[0].dtype.is_bool else "np.invert"
            nat = np.dtype(np.bool_) if s.srcs[0].dtype.is_bool else s.srcs[0].dtype.np
            self.call(s, fn, args, nat, s.srcs)
        elif op is Op.ROUND:
            nat = np.round(np.zeros(1, s.srcs[0].dtype.np)).dtype
            if nat == want:
                self.call(s, "np.round", args, nat, s.srcs)
            else:
                self.assign(s, f"np.round({args[0]}).astype({np_type(s.dtype)})")
        elif op is Op.CAST:
            self.assign(s, f"np.asarray({args[0]}).astype({np_type(s.dtype)})",
                        copy_src=args[0])
        elif op is Op.WHERE:
            c, a, b = args
            nat = np.result_type(s.srcs[1].dtype.np, s.srcs[2].dtype.np)
            if s.srcs[1].dtype.np == want and s.srcs[2].dtype.np == want:
                # a branch-free select of bits (runtime/compiled.py `_select`)
                dst = self.dest(s)
                if dst is None:
                    self.bind(s, f"_where({c}, {a}, {b}, {np_type(s.dtype)})")
                else:
                    self.lines.append(f"_select({c}, {a}, {b}, {dst})")
                    self.finish(s, dst)
            elif nat == want and self.tiled or s.id in self.stored and nat == want:
                dst = self.dest(s)
                self.lines.append(f"np.copyto({dst}, {b})")
                self.lines.append(f"np.copyto({dst}, {a}, where={c})")
                self.finish(s, dst)
            else:
                expr = f"np.where({c}, {a}, {b})"
                if nat != want:
                    expr += f".astype({np_type(s.dtype)})"
                self.assign(s, expr)
        elif op in REDUCER:
            self.reduce(s)
        elif op is Op.MATMUL:
            self.lines.extend(self.matmul_line(s, f"m{s.id}").split("\n"))
            self.names[s.id] = f"m{s.id}"
        else:  # pragma: no cover - covered_ops() is tested
            raise NotImplementedError(f"no NumPy rule for {op}")
        self.release(s)

    def matmul_line(self, s: Stmt, name: str) -> str:
        """`name = a @ b` as the interpreter computes it; written straight into the
        output buffer when the matmul is stored and needs no cast."""
        a, b = (self.full(r) for r in s.srcs)
        acc = _acc(s.dtype)
        a, b = (f"{x}.astype(np.{acc.name}, copy=False)" if r.dtype.np != acc else x
                for x, r in zip((a, b), s.srcs))
        if s.id in self.stored and acc == s.dtype.np and s.dtype is not dt.bfloat16:
            o = self.stored[s.id]
            return f"{name} = np.matmul({a}, {b}, out={o})"
        line = f"{name} = np.matmul({a}, {b})"
        if acc != s.dtype.np:
            line += f".astype({np_type(s.dtype)})"
        if s.dtype is dt.bfloat16:
            line += f"\n{name} = _bf16({name})"
        if s.id in self.stored:
            line += f"\nnp.copyto({self.stored[s.id]}, {name})"
        return line

    def call(self, s: Stmt, fn: str, args, natural: np.dtype, srcs) -> None:
        want = s.dtype.np
        if self.scalar and fn in OPERATOR and natural == want and want in _SCALAR_DTYPES:
            self.bind(s, OPERATOR[fn].format(*args))
            return
        dst = self.dest(s, srcs)
        if dst is None:
            expr = f"{fn}({', '.join(args)})"
            if natural != want:
                expr = f"np.asarray({expr}).astype({np_type(s.dtype)})"
            self.bind(s, expr)
            return
        cast = "" if natural == want else ", casting='unsafe'"
        self.lines.append(f"{fn}({', '.join(args)}, out={dst}{cast})")
        self.finish(s, dst)

    def assign(self, s: Stmt, expr: str, copy_src: str | None = None) -> None:
        """A statement computed by an expression (then copied to its destination)."""
        dst = self.dest(s)
        if dst is None:
            self.bind(s, expr)
            return
        if copy_src is not None:
            self.lines.append(f"np.copyto({dst}, {copy_src}, casting='unsafe')")
        else:
            self.lines.append(f"np.copyto({dst}, {expr}, casting='unsafe')")
        self.finish(s, dst)

    def bind(self, s: Stmt, expr: str) -> None:
        name = f"t{s.id}"
        if s.dtype is dt.bfloat16:
            expr = f"_bf16({expr})"
        self.lines.append(f"{name} = {expr}")
        self.names[s.id] = name
        if self.scalar and s.id in self.stored:
            self.lines.append(f"{self.stored[s.id]}[{_first(s.shape)}] = {name}")

    def finish(self, s: Stmt, dst: str) -> None:
        if s.dtype is dt.bfloat16:
            self.lines.append(f"_bf16_({dst})")
        self.names[s.id] = dst

    def buffer_for(self, s: Stmt) -> None:
        """Set the ufunc buffer for an elementwise statement of a tile (see DEFAULT_BUFSIZE)."""
        last = s.shape[-1] if s.shape else 0
        if not self.tiled or not 16 <= last < DEFAULT_BUFSIZE:
            return
        if any(r.kind != "const" and len(self.actual(r)) == len(s.shape)
               and self.actual(r)[-1] == 1 for r in s.srcs):
            self.set_bufsize(last // 16 * 16)  # NumPy takes multiples of 16

    def set_bufsize(self, size: int) -> None:
        if size != self.bufsize:
            self.lines.append(f"np.setbufsize({size})")
            self.bufsize = size
            self.resized.append(size)

    def reduce(self, s: Stmt) -> None:
        (r,) = s.srcs
        if s.op in (Op.REDUCE_SUM, Op.REDUCE_PROD) and r.dtype.np != _acc(s.dtype):
            self.set_bufsize(DEFAULT_BUFSIZE)  # it casts: its result depends on the size
            self.casting = True
        x = self.full(r)
        if s.op in (Op.REDUCE_MAX, Op.REDUCE_MIN) and any(r.shape[a] == 0 for a in s.arg):
            msg = (f"max/min of an empty tensor of shape {tuple(r.shape)} over dims "
                   f"{list(s.arg)}: the operation has no identity; specify a non-empty dim")
            self.lines.append(f"raise RuntimeError({msg!r})")
            self.names[s.id] = "None"
            return
        fn = f"np.{REDUCER[s.op]}.reduce"
        kw = f"axis={arg_src(tuple(s.arg))}, keepdims=True"
        acc = _acc(s.dtype)
        if s.op in (Op.REDUCE_SUM, Op.REDUCE_PROD):
            kw += f", dtype=np.{acc.name}"
            natural = acc
        else:
            natural = r.dtype.np
        dst = self.dest(s)
        # NOTE: a float sum starts from +0.0, as the interpreter's rule (and torch's)
        plus_zero = s.op is Op.REDUCE_SUM and acc.kind == "f"
        if dst is None:
            expr = f"{fn}({x}, {kw})"
            if plus_zero:
                expr = f"np.add({expr}, 0.0)"
            if natural != s.dtype.np:
                expr = f"np.asarray({expr}).astype({np_type(s.dtype)})"
            self.bind(s, expr)
            return
        if natural == s.dtype.np:
            self.lines.append(f"{fn}({x}, {kw}, out={dst})")
        else:
            self.lines.append(f"np.copyto({dst}, {fn}({x}, {kw}), casting='unsafe')")
        if plus_zero:
            self.lines.append(f"np.add({dst}, 0.0, out={dst})")
        self.finish(s, dst)

    # -- the function ------------------------------------------------------------------
    def emit(self) -> str:
        k = self.k
        self.scalar = not self.tiled and k.numel == 1 and all(
            s.op in _SCALAR_OPS and s.dtype is not dt.bfloat16 for s in k.body)
        if self.scalar:
            self.lines = [f"l{j} = l{j}[{_first(shape)}]"
                          for j, shape in enumerate(self.load_shapes)]
            self.load_shapes = [() for _ in self.load_shapes]
        for s in k.body:
            self.stmt(s)
        loads = [f"l{j}" for j in range(len(k.loads))]
        outs = [f"o{j}" for j in range(len(k.stores))]
        if not self.tiled:
            params = ", ".join(loads + outs)
            body = self.lines or ["pass"]
            return f"def {k.name}({params}):\n" + "".join(f"    {ln}\n" for ln in body)
        pre = [f"m{s.id}" for s in self.pre]
        a = self.axis
        head = ["n = hi - lo"]
        for j, r in enumerate(k.loads):
            shape = self.load_shapes[j]
            if len(shape) == len(k.domain) and shape[a] == k.domain[a] and shape[a] > 1:
                head.append(f"l{j} = l{j}{_index(a, 'lo:hi')}")
        for st in self.pre:
            if st.shape[a] == k.domain[a] and st.shape[a] > 1:
                head.append(f"m{st.id} = m{st.id}{_index(a, 'lo:hi')}")
        def this_tile(name: str, array: str, shape) -> str:
            """`name = array`, cut to this tile's n rows where it spans the tile axis."""
            return f"{name} = {array}{_index(a, ':n')}" if shape[a] > 1 else f"{name} = {array}"

        for j, (shape, _) in enumerate(self.scratch):
            head.append(this_tile(f"s{j}", f"s[{j}]", shape))
        fills = []
        for (shape, d, value), j in self.fills.items():
            name = f"_F_{k.name}_{j}"
            fills.append(f"{name} = np.full({self._tile_spec(shape)!r}, {value})\n")
            head.append(this_tile(f"f{j}", name, shape))
        params = ", ".join(["lo", "hi"] + loads + pre + outs + ["s"])
        src = "".join(fills) + f"def {k.name}_tile({params}):\n"
        bufsize = 0  # set by the threads around their runs of tiles (0: left as it is)
        if len(self.resized) == 1 and not self.casting:
            bufsize = self.resized[0]
            body = [ln for ln in self.lines if ln != f"np.setbufsize({bufsize})"]
        elif self.resized:
            # NOTE: restored even when a line raises: a worker thread keeps its setting
            body = (["try:"] + [f"    {ln}" for ln in self.lines]
                    + ["finally:", f"    np.setbufsize({DEFAULT_BUFSIZE})"])
        else:
            body = self.lines
        src += "".join(f"    {ln}\n" for ln in head + body)
        outer = [self._pre_line(s) for s in self.pre]
        spec = repr(tuple(self._scratch_spec()))
        inner = k.numel // k.domain[a]
        whole = not self.scratch and not self.fills
        outer.append(f"_tiles({k.name}_tile, {k.domain[a]}, {self.rows}, {inner}, "
                     f"({', '.join(loads + pre + outs)},), {spec}, _S_{k.name}, {whole}, "
                     f"{bufsize})")
        src += f"_S_{k.name} = []\n"
        src += f"def {k.name}({', '.join(loads + outs)}):\n"
        src += "".join(f"    {ln}\n" for ln in outer)
        return src

    def _pre_line(self, s: Stmt) -> str:
        saved, self.axis = self.axis, None
        try:
            line = self.matmul_line(s, f"m{s.id}")
        finally:
            self.axis = saved
        return line.replace("\n", "\n    ")

    def _tile_spec(self, shape) -> tuple:
        """`shape` with its tile axis cut to one tile."""
        shape = list(shape)
        if self.axis is not None:
            shape[self.axis] = min(self.rows, shape[self.axis])
        return tuple(shape)

    def _scratch_spec(self):
        for shape, d in self.scratch:
            yield (self._tile_spec(shape), d)


# ---------------------------------------------------------------------------
# the program

def _tile_rows(k: Kernel, tile_elems: int) -> int:
    a = k.tile_axis
    inner = math.prod(k.domain[a + 1:]) * math.prod(k.domain[:a])
    return max(1, tile_elems // max(1, inner))


def emit(prog: Program, tile_elems: int = TILE_ELEMS) -> str:
    """The source text of a module whose `program(inputs, params)` runs `prog`."""
    parts = ["# generated by ember.codegen.numpy_gen\n"]
    vals = prog.values
    stubs: list[str] = []
    body: list[str] = []
    for pos, v in prog.inputs:
        # NOTE: buffers arrive flat; a shaped BUFFER node (or a realised value) reads
        # them in its shape
        shape = tuple(vals[v].shape)
        body.append(f"v{v} = inputs[{pos}]" if len(shape) == 1 else
                    f"v{v} = inputs[{pos}].reshape({shape!r})")
    if prog.slot_bytes:
        body.append("slots = _POOL.pop() if _POOL else "
                    f"[np.empty(b, np.uint8) for b in {list(prog.slot_bytes)!r}]")

    def alloc(v: int) -> list[str]:
        val = vals[v]
        a = prog.allocs.get(v)
        shape = repr(tuple(val.shape))
        if a is None or a.kind == "fresh":
            return [f"v{v} = np.empty({shape}, {np_type(val.dtype)})"]
        if a.kind == "slot":
            nb = math.prod(val.shape) * val.dtype.np.itemsize
            view = f"slots[{a.slot}][:{nb}].view({np_type(val.dtype)})"
            return [f"v{v} = {view}.reshape({shape})"]
        base = vals[a.of]
        return [f"v{a.of} = np.empty({tuple(base.shape)!r}, {np_type(base.dtype)})",
                f"v{v} = v{a.of}.reshape({shape})"]

    for step in prog.steps:
        if step.kind == "kernel":
            k = step.kernel
            tiled = k.tile_axis is not None
            gen = _Kernel(k, tiled, _tile_rows(k, tile_elems) if tiled else 0)
            gen.load_shapes = [vals[v].shape for v in k.loads]
            parts.append(gen.emit())
            if gen.scratch and not tiled:  # pragma: no cover - direct kernels use none
                raise AssertionError("direct kernel with scratch")
            for _, v in k.stores:
                body.extend(alloc(v))
            args = [f"v{v}" for v in k.loads] + [f"v{v}" for _, v in k.stores]
            body.append(f"{k.name}({', '.join(args)})")
        elif step.kind == "view":
            if prog.allocs.get(step.out, None) is not None and \
                    prog.allocs[step.out].kind == "base":
                continue
            x = f"v{step.srcs[0]}"
            if step.op is Op.SLICE:
                a = ", ".join(f"{lo}:{hi}:{st}" for lo, hi, st in step.arg)
            elif step.op is Op.AS_STRIDED:
                v = step.arg
                a = f"{tuple(v.shape)!r}, {tuple(v.strides)!r}, {v.offset}"
            else:
                a = arg_src(tuple(step.arg))
            body.append(f"v{step.out} = " + VIEW[step.op].format(x=x, a=a))
        elif step.kind == "const":
            val = vals[step.out]
            body.append(f"v{step.out} = np.full({tuple(val.shape)!r}, "
                        f"{literal(step.arg, val.dtype)})")
        else:
            val = vals[step.out]
            args = "".join(f", v{s}" for s in step.srcs)
            if step.op is Op.WRITE:
                v = step.arg
                dest, src = (f"v{x}" for x in step.srcs)
                body.append(f"v{step.out} = _write({dest}, {src}, {tuple(v.shape)!r}, "
                            f"{tuple(v.strides)!r}, {v.offset}, {val.dtype is dt.bfloat16})")
            elif step.op is Op.RAND:
                _, j, stream = step.arg
                stub = (f"_Stub(Op.RAND, (params[{j}][0], params[{j}][1], {stream}), "
                        f"{dtype_ref(val.dtype)}, {tuple(val.shape)!r})")
                body.append(f"v{step.out} = _extern({stub})")
            else:
                name = f"_n{len(stubs)}"
                stubs.append(f"{name} = _Stub(Op.{step.op.name}, {arg_src(step.arg)}, "
                             f"{dtype_ref(val.dtype)}, {tuple(val.shape)!r})")
                body.append(f"v{step.out} = _extern({name}{args})")
    if prog.slot_bytes:
        body.append("_POOL.append(slots)")
    body.append("return [" + ", ".join(f"v{o}" for o in prog.outputs) + "]")
    parts.extend(s + "\n" for s in stubs)
    parts.append("_POOL = []\n")
    parts.append("def program(inputs, params):\n" + "".join(f"    {ln}\n" for ln in body))
    return "".join(parts)
