"""NumPy code generator: a `Program` to the source text of one Python module.

The module defines one function per kernel and a driver, `program(inputs,
params)`, that allocates buffers, calls the kernels and view/extern steps in
order, and returns the outputs. The runtime `exec`s it once (see
runtime/compiled.py for the names the source expects: `np`, `dt`, `Op`, `View`,
`_extern`, `_strided_at`, `_write`, `_write_into`, `_bf16`, `_bf16_`, `_tiles`, `_Stub`, `_int_pow`,
`_elementwise_pow`, `_select`, `_where`, `_sum_last`, `_check_divisor`, `_float_mod`, `_erf`,
`_erfc`, `_erfinv`: its
`NAMESPACE`).

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
`RULES` holds one rule per Op (a kernel statement, a view step or a step of its
own, as ir/ops.py's OPINFO places the op); tests/test_op_tables.py checks that
every Op has the one it needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..ir import dtypes as dt
from ..ir.node import Param
from ..ir.ops import ELEMENTWISE, Op
from .kernel import AllocKind, Kernel, Program, Ref, RefKind, Step, StepKind, Stmt, Value
from .numpy_policy import TILE_ELEMS, sums_rows

__all__ = ["EXTERN_OPS", "RULES", "Rule", "SPECIAL", "StepContext", "UFUNC", "VIEW", "covered_ops",
           "emit"]

REDUCER = {Op.REDUCE_SUM: "add", Op.REDUCE_PROD: "multiply", Op.REDUCE_MAX: "maximum",
           Op.REDUCE_MIN: "minimum"}
# one-element kernels compute on NumPy scalars (a ufunc on a scalar costs a third
# of one on a 0-d array); these ops, on operands of their own float dtype, are
# written as Python operators, which NumPy's float scalars round exactly as the
# ufuncs do (IEEE arithmetic)
OPERATOR = {"np.add": "({} + {})", "np.subtract": "({} - {})", "np.multiply": "({} * {})",
            "np.true_divide": "({} / {})", "np.negative": "(-{})"}
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
    if (c.kind is not RefKind.CONST or float(c.index) != 2.0
            or s.dtype.np not in (np.float32, np.float16)):
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

    def __init__(self, k: Kernel, tiled: bool, tile_rows: int | str):
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
                if r.kind is RefKind.LOCAL:
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
        # loads that are runtime parameters (set by emit()): load -> the value's shape
        self.param_loads: dict[int, tuple] = {}
        self.param_fills: set[int] = set()  # of those, the ones _FILL_CONST ops read

    # -- operands ----------------------------------------------------------------
    def tile_shape(self, shape) -> str:
        if self.axis is None:
            return repr(tuple(shape))
        parts = [("n" if a == self.axis else str(s)) for a, s in enumerate(shape)]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    def ref(self, r: Ref) -> str:
        if r.kind is RefKind.CONST:
            return literal(r.index, r.dtype)
        if r.kind is RefKind.LOAD:
            return f"l{r.index}"
        return self.names[r.index]

    def actual(self, r: Ref) -> tuple:
        """The shape the operand's array really has (broadcasts are left implicit)."""
        if r.kind is RefKind.CONST:
            return ()
        if r.kind is RefKind.LOAD:
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
        if r.kind is RefKind.CONST or self.k.body[r.index].op is Op.EXPAND:
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
            if (r.kind is RefKind.LOCAL and self.uses.get(r.index) == s.id
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
            if r.kind is RefKind.LOCAL and self.uses.get(r.index) == s.id and r.index in self.held:
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
        rule = RULES[s.op].stmt
        if rule is None:  # pragma: no cover - the op-table test checks every Op
            raise NotImplementedError(f"no NumPy rule for {s.op}")
        if not rule(self, s, [self.ref(r) for r in s.srcs]):
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
        if not self.tiled or not 16 <= last < DEFAULT_BUFSIZE or isinstance(self.rows, Src):
            return  # NOTE: the size a program of any size runs at is not known here
        if any(r.kind is not RefKind.CONST and len(self.actual(r)) == len(s.shape)
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
        acc = _acc(s.dtype)
        if s.op is Op.REDUCE_SUM and sums_rows(r.shape, s.arg, r.dtype.np, acc):
            self.row_sums(s, x)
            return
        fn = f"np.{REDUCER[s.op]}.reduce"
        kw = f"axis={arg_src(tuple(s.arg))}, keepdims=True"
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

    def row_sums(self, s: Stmt, x: str) -> None:
        """A float sum over the last axis, as the interpreter computes it (`sum_last`)."""
        dst = self.dest(s)
        if dst is None:
            self.bind(s, f"np.add(_sum_last({x}), 0.0)")
            return
        self.lines.append(f"_sum_last({x}, out={dst})")
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
            # NOTE: a parameter read by a _FILL_CONST op is a tile-sized fill (below)
            shape = self.param_loads[j] if j in self.param_fills else self.load_shapes[j]
            if len(shape) == len(k.domain) and shape[a] == k.domain[a] and shape[a] > 1:
                cut = ":n" if j in self.param_fills else "lo:hi"
                head.append(f"l{j} = l{j}{_index(a, cut)}")
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
        # NOTE: a runtime parameter that max/min read is filled into one tile-sized array
        # per call (a stride-0 operand takes NumPy's slow loop: see _FILL_CONST)
        outer += [f"l{j} = np.full({self._tile_spec(self.param_loads[j])!r}, "
                  f"l{j}[{_first(self.load_shapes[j])}])" for j in sorted(self.param_fills)]
        spec = repr(tuple(self._scratch_spec()))
        inner = k.numel // k.domain[a]
        whole = not self.scratch and not self.fills and not self.param_fills
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
        """`shape` with its tile axis cut to one tile (computed when the program runs
        where the row count is, `Src`)."""
        shape = list(shape)
        if self.axis is not None:
            size = shape[self.axis]
            shape[self.axis] = Src(f"min({self.rows}, {size})") if isinstance(self.rows, Src) \
                else min(self.rows, size)
        return tuple(shape)

    def _scratch_spec(self):
        for shape, d in self.scratch:
            yield (self._tile_spec(shape), d)


# ---------------------------------------------------------------------------
# the rules: one per Op

# A statement rule `rule(gen, s, args)` emits statement `s` of the kernel `gen`
# writes (`args`: its operands' expressions). It returns True where the result is
# its operand itself (an EXPAND, a MATMUL computed before the tiles): the
# operands then stay held; otherwise their scratch arrays are released after it.

def _ufunc(k: _Kernel, s: Stmt, args: list[str]) -> None:
    """The op's NumPy ufunc (RULES[op].ufunc) on the operands, as the interpreter."""
    op = s.op
    k.buffer_for(s)
    if op in _FILL_CONST and k.tiled:
        args = [k.filled(r, s.shape) if r.kind is RefKind.CONST else a
                for a, r in zip(args, s.srcs)]
        k.param_fills |= {r.index for r in s.srcs
                          if r.kind is RefKind.LOAD and r.index in k.param_loads
                          and tuple(k.param_loads[r.index]) == tuple(s.shape)}
    k.call(s, f"np.{UFUNC[op]}", args, _natural(op, [r.dtype for r in s.srcs]), s.srcs)


def _int_divide(k: _Kernel, s: Stmt, args: list[str]) -> None:
    if s.dtype.is_integer and math.prod(s.shape):
        # NOTE: an integer divisor of zero raises, as the interpreter's rule does
        k.lines.append(f"_check_divisor({args[1]})")
    _ufunc(k, s, args)


def _mod(k: _Kernel, s: Stmt, args: list[str]) -> None:
    if not s.dtype.is_floating_point:
        _int_divide(k, s, args)
        return
    # NOTE: torch's remainder, not NumPy's (the sign of a zero result differs)
    expr = f"_float_mod({args[0]}, {args[1]})"
    if _natural(s.op, [r.dtype for r in s.srcs]) != s.dtype.np:
        expr = f"np.asarray({expr}).astype({np_type(s.dtype)})"
    k.assign(s, expr)


def _pow(k: _Kernel, s: Stmt, args: list[str]) -> None:
    if s.dtype.is_integer:
        k.assign(s, f"_int_pow({args[0]}, {args[1]})")
    elif s.arg is not None:
        k.assign(s, f"_elementwise_pow({args[0]}, {args[1]})")  # see the interpreter's
    elif _square_is_exact(s):
        k.call(s, "np.multiply", [args[0], args[0]], s.dtype.np, s.srcs[:1])
    else:
        _ufunc(k, s, args)


def _not(k: _Kernel, s: Stmt, args: list[str]) -> None:
    fn = "np.logical_not" if s.srcs[0].dtype.is_bool else "np.invert"
    nat = np.dtype(np.bool_) if s.srcs[0].dtype.is_bool else s.srcs[0].dtype.np
    k.call(s, fn, args, nat, s.srcs)


def _round(k: _Kernel, s: Stmt, args: list[str]) -> None:
    nat = np.round(np.zeros(1, s.srcs[0].dtype.np)).dtype
    if nat == s.dtype.np:
        k.call(s, "np.round", args, nat, s.srcs)
    else:
        k.assign(s, f"np.round({args[0]}).astype({np_type(s.dtype)})")


def _cast(k: _Kernel, s: Stmt, args: list[str]) -> None:
    k.assign(s, f"np.asarray({args[0]}).astype({np_type(s.dtype)})", copy_src=args[0])


def _special(name: str):
    """A rule calling a function NumPy lacks (runtime/special.py: float64 in and out)."""
    def rule(k: _Kernel, s: Stmt, args: list[str]) -> None:
        expr = f"{name}({args[0]})"
        k.assign(s, expr if s.dtype.np == np.float64 else f"{expr}.astype({np_type(s.dtype)})")
    return rule


def _where(k: _Kernel, s: Stmt, args: list[str]) -> None:
    c, a, b = args
    want = s.dtype.np
    nat = np.result_type(s.srcs[1].dtype.np, s.srcs[2].dtype.np)
    if s.srcs[1].dtype.np == want and s.srcs[2].dtype.np == want:
        # a branch-free select of bits (runtime/compiled.py `_select`)
        dst = k.dest(s)
        if dst is None:
            k.bind(s, f"_where({c}, {a}, {b}, {np_type(s.dtype)})")
        else:
            k.lines.append(f"_select({c}, {a}, {b}, {dst})")
            k.finish(s, dst)
    elif nat == want and k.tiled or s.id in k.stored and nat == want:
        dst = k.dest(s)
        k.lines.append(f"np.copyto({dst}, {b})")
        k.lines.append(f"np.copyto({dst}, {a}, where={c})")
        k.finish(s, dst)
    else:
        expr = f"np.where({c}, {a}, {b})"
        if nat != want:
            expr += f".astype({np_type(s.dtype)})"
        k.assign(s, expr)


def _expand(k: _Kernel, s: Stmt, args: list[str]) -> bool:
    """A broadcast: the operand itself (NumPy broadcasts), copied only where stored."""
    k.names[s.id] = args[0]
    if k.scalar:
        if s.id in k.stored:
            k.lines.append(f"{k.stored[s.id]}[{_first(s.shape)}] = {k.names[s.id]}")
        return True
    if s.id in k.stored:
        dst = k.dest(s)
        k.lines.append(f"np.copyto({dst}, {k.names[s.id]})")
        k.names[s.id] = dst
    return True


def _reduce(k: _Kernel, s: Stmt, args: list[str]) -> None:
    k.reduce(s)


def _matmul(k: _Kernel, s: Stmt, args: list[str]) -> bool:
    if s in k.pre:  # computed before the tiles (`_pre_line`)
        k.names[s.id] = f"m{s.id}"
        return True
    k.lines.extend(k.matmul_line(s, f"m{s.id}").split("\n"))
    k.names[s.id] = f"m{s.id}"
    return False


# A view rule `view(x, arg)` is the expression of a view step of `x`.

def _template(text: str):
    """A view rule formatting `text` with the operand {x} and the arg {a}."""
    return lambda x, arg: text.format(x=x, a=arg_src(tuple(arg)))


def _slice_view(x: str, arg) -> str:
    return f"{x}[" + ", ".join(f"{lo}:{hi}:{st}" for lo, hi, st in arg) + "]"


def _strided_view(x: str, v) -> str:
    return f"_strided_at({x}, {tuple(v.shape)!r}, {tuple(v.strides)!r}, {v.offset})"


# A step rule `step(st, val, stubs)` is the line computing step `st` into value
# `val` (stubs: module-level `_Stub`s it may add, one per line).

class StepContext:
    """What step rules may ask of the whole program: the values a WRITE may fill in
    place (`_owned_once`) and the filled constants."""

    def __init__(self, prog: Program, scalars: bool = True):
        self.owned = _owned_once(prog)
        self.consts = {s.out: s.arg for s in prog.steps
                       if s.kind is StepKind.CONST and not isinstance(s.arg, Param)}
        self.outputs = set(prog.outputs)
        # runtime parameters passed as NumPy scalars (NumPy kernels; not Triton's)
        self.scalars = _scalar_params(prog) if scalars else set()


def _fill_src(value, val: Value) -> str:
    """A fresh array of val's shape filled with `value` (np.zeros for +0: cheaper)."""
    if value == 0 and not (isinstance(value, float) and math.copysign(1.0, value) < 0):
        return f"np.zeros({tuple(val.shape)!r}, {np_type(val.dtype)})"
    return f"np.full({tuple(val.shape)!r}, {literal(value, val.dtype)})"


def _scalar_params(prog: Program) -> set[int]:
    """The runtime parameters that only kernels read, and only through elementwise
    statements: those are passed as NumPy scalars (a broadcast view of the value's shape
    costs microseconds to make per call, a tile per tile to slice)."""
    params = {s.out for s in prog.steps if s.kind is StepKind.CONST and isinstance(s.arg, Param)}
    out = params - set(prog.outputs)
    for s in prog.steps:
        if s.kind is not StepKind.KERNEL:
            out -= set(s.srcs)
            continue
        k = s.kernel
        for j, v in enumerate(k.loads):
            if v in out and any(r.kind is RefKind.LOAD and r.index == j and
                                st.op not in ELEMENTWISE
                                for st in k.body for r in st.srcs):
                out.discard(v)
    return out


def _const_step(st: Step, val: Value, stubs: list[str], ctx=None) -> str:
    """A filled constant; a runtime parameter (a Python number whose value is bound per
    call: `ir.node.Param`) as a broadcast view, fresh where it is an output, or a NumPy
    scalar where kernels only combine it elementwise (`ctx.scalars`)."""
    if isinstance(st.arg, Param) and ctx is not None and st.out in ctx.scalars:
        x = f"np.array(params[{st.arg.index}], {np_type(val.dtype)})"
        return f"v{st.out} = " + (f"_bf16({x})[()]" if val.dtype is dt.bfloat16 else f"{x}[()]")
    if isinstance(st.arg, Param):
        output = ctx is None or st.out in ctx.outputs
        return f"v{st.out} = " + _param(st.arg.index, val, output)
    return f"v{st.out} = {_fill_src(st.arg, val)}"


def _write_step(st: Step, val: Value, stubs: list[str], ctx=None) -> str:
    """A strided write into a copy of the destination; into the destination itself
    where the program made it and nothing else reads it (`ctx.owned`), or into a fresh
    fill where it is a filled constant read elsewhere too (cheaper than a copy)."""
    v = st.arg
    dest, src = (f"v{x}" for x in st.srcs)
    fn = "_write"
    if ctx is not None and st.srcs[0] in ctx.owned:
        fn = "_write_into"
    elif ctx is not None and st.srcs[0] in ctx.consts:
        fn, dest = "_write_into", _fill_src(ctx.consts[st.srcs[0]], val)
    return (f"v{st.out} = {fn}({dest}, {src}, {tuple(v.shape)!r}, "
            f"{tuple(v.strides)!r}, {v.offset}, {val.dtype is dt.bfloat16})")


def _rand_step(st: Step, val: Value, stubs: list[str], ctx=None) -> str:
    _, j, stream = st.arg
    stub = (f"_Stub(Op.RAND, (params[{j}][0], params[{j}][1], {stream}), "
            f"{dtype_ref(val.dtype)}, {tuple(val.shape)!r})")
    return f"v{st.out} = _extern({stub})"


def _extern_step(st: Step, val: Value, stubs: list[str], ctx=None) -> str:
    """The interpreter's rule, called on a stub node (`_extern`)."""
    name = f"_n{len(stubs)}"
    stubs.append(f"{name} = _Stub(Op.{st.op.name}, {arg_src(st.arg)}, "
                 f"{dtype_ref(val.dtype)}, {tuple(val.shape)!r})")
    args = "".join(f", v{x}" for x in st.srcs)
    return f"v{st.out} = _extern({name}{args})"


@dataclass(frozen=True)
class Rule:
    """How this generator emits one Op: as a kernel statement (`stmt`, with the
    `ufunc` that computes it, if one does), a view step (`view`), a step of its
    own (`step`), or, for a BUFFER, as one of the program's inputs (`leaf`)."""

    stmt: Callable | None = None
    ufunc: str | None = None
    view: Callable | None = None
    step: Callable | None = None
    leaf: bool = False


def _uf(name: str, stmt=_ufunc) -> Rule:
    return Rule(stmt, name)


# NOTE: one row per Op (ir/ops.py's OPINFO says which form it needs; a test checks)
RULES: dict[Op, Rule] = {
    Op.BUFFER: Rule(leaf=True),
    Op.CONST: Rule(step=_const_step),
    Op.RAND: Rule(step=_rand_step),
    Op.ARANGE: Rule(step=_extern_step),
    Op.NEG: _uf("negative"),
    Op.EXP: _uf("exp"),
    Op.LOG: _uf("log"),
    Op.SIN: _uf("sin"),
    Op.COS: _uf("cos"),
    Op.TAN: _uf("tan"),
    Op.TANH: _uf("tanh"),
    Op.SQRT: _uf("sqrt"),
    Op.ABS: _uf("absolute"),
    Op.SIGN: _uf("sign"),
    Op.FLOOR: _uf("floor"),
    Op.CEIL: _uf("ceil"),
    Op.ROUND: Rule(_round),
    Op.TRUNC: _uf("trunc"),
    Op.LOG1P: _uf("log1p"),
    Op.EXPM1: _uf("expm1"),
    Op.EXP2: _uf("exp2"),
    Op.RECIP: _uf("reciprocal"),
    Op.NOT: Rule(_not),
    Op.CAST: Rule(_cast),
    Op.ADD: _uf("add"),
    Op.SUB: _uf("subtract"),
    Op.MUL: _uf("multiply"),
    Op.DIV: _uf("true_divide"),
    Op.POW: _uf("power", _pow),
    Op.MAX: _uf("maximum"),
    Op.MIN: _uf("minimum"),
    Op.LT: _uf("less"),
    Op.LE: _uf("less_equal"),
    Op.EQ: _uf("equal"),
    Op.NE: _uf("not_equal"),
    Op.AND: _uf("bitwise_and"),
    Op.OR: _uf("bitwise_or"),
    Op.XOR: _uf("bitwise_xor"),
    Op.FLOORDIV: _uf("floor_divide", _int_divide),
    Op.MOD: _uf("remainder", _mod),
    Op.WHERE: Rule(_where),
    Op.ERF: Rule(_special("_erf")),
    Op.ERFC: Rule(_special("_erfc")),
    Op.ERFINV: Rule(_special("_erfinv")),
    Op.ASIN: _uf("arcsin"),
    Op.ACOS: _uf("arccos"),
    Op.ATAN: _uf("arctan"),
    Op.SINH: _uf("sinh"),
    Op.COSH: _uf("cosh"),
    Op.ASINH: _uf("arcsinh"),
    Op.ACOSH: _uf("arccosh"),
    Op.ATANH: _uf("arctanh"),
    Op.ATAN2: _uf("arctan2"),
    Op.HYPOT: _uf("hypot"),
    Op.COPYSIGN: _uf("copysign"),
    Op.FMOD: _uf("fmod", _int_divide),
    Op.SHL: _uf("left_shift"),
    Op.SHR: _uf("right_shift"),
    Op.SCAN: Rule(step=_extern_step),
    Op.SCATTER_REDUCE: Rule(step=_extern_step),
    Op.RESHAPE: Rule(view=_template("{x}.reshape({a})")),
    Op.PERMUTE: Rule(view=_template("np.transpose({x}, {a})")),
    Op.EXPAND: Rule(_expand, view=_template("np.broadcast_to({x}, {a})")),
    Op.SLICE: Rule(view=_slice_view),
    Op.FLIP: Rule(view=_template("np.flip({x}, {a})")),
    Op.AS_STRIDED: Rule(view=_strided_view),
    Op.WRITE: Rule(step=_write_step),
    Op.REDUCE_SUM: Rule(_reduce),
    Op.REDUCE_PROD: Rule(_reduce),
    Op.REDUCE_MAX: Rule(_reduce),
    Op.REDUCE_MIN: Rule(_reduce),
    Op.MATMUL: Rule(_matmul),
    Op.TAKE: Rule(step=_extern_step),
    Op.SCATTER: Rule(step=_extern_step),
    Op.SCATTER_ADD: Rule(step=_extern_step),
    Op.ARGSORT: Rule(step=_extern_step),
    Op.CUMSUM: Rule(step=_extern_step),
}
# derived views of the table
UFUNC = {op: r.ufunc for op, r in RULES.items() if r.ufunc is not None}
SPECIAL = {op for op, r in RULES.items() if r.stmt is not None and r.ufunc is None}
VIEW = {op: r.view for op, r in RULES.items() if r.view is not None}
EXTERN_OPS = {op for op, r in RULES.items() if r.step is not None and op is not Op.CONST}
_SCALAR_OPS = set(UFUNC) | {Op.EXPAND, Op.NOT}


def covered_ops() -> set[Op]:
    """Every Op this generator has a rule for."""
    return set(RULES)


# ---------------------------------------------------------------------------
# the program

class Src(str):
    """Source text of a number the generated program computes when it runs (its repr is
    the text itself, so it reads as code inside a tuple's repr)."""

    def __repr__(self) -> str:
        return str(self)


def _tile_rows(k: Kernel, tile_elems: int, any_size: bool = False) -> int | Src:
    """Rows of the tile axis per tile; with `any_size`, as code computing them from the
    numbers of the kernel's domain, which may be a dynamic size's (runtime/symbolic.py)."""
    a = k.tile_axis
    inner = math.prod(k.domain[a + 1:]) * math.prod(k.domain[:a])
    if any_size:
        return Src(f"max(1, {tile_elems} // {max(1, inner)})")
    return max(1, tile_elems // max(1, inner))


def _owned_once(prog: Program) -> set[int]:
    """Values a WRITE may overwrite in place instead of copying.

    NOTE: only values the program itself made as fresh arrays (a filled constant or
    another WRITE's result) and that nothing else reads (no other step, no view, not
    an output): a chain of writes (cat, stack, padding, slice gradients) then fills one
    array instead of copying the whole of it once per write.
    """
    uses: dict[int, int] = {}
    fresh = set()
    for s in prog.steps:
        srcs = s.kernel.loads if s.kind is StepKind.KERNEL else s.srcs
        for v in srcs:
            uses[v] = uses.get(v, 0) + 1
        if (s.kind is StepKind.CONST and not isinstance(s.arg, Param)) or (
                s.kind is StepKind.EXTERN and s.op is Op.WRITE):
            fresh.add(s.out)
    for v in prog.outputs:
        uses[v] = uses.get(v, 0) + 1
    writes = {s.srcs[0] for s in prog.steps if s.kind is StepKind.EXTERN and s.op is Op.WRITE}
    return {v for v in writes if v in fresh and uses.get(v) == 1}


def _param(j: int, val, output: bool) -> str:
    """Source text of runtime parameter j (a Python number) as the interpreter's CONST
    of `val`'s dtype and shape: a broadcast view of one element (bfloat16 rounded),
    or a fresh array where it is an output of the program."""
    x = f"np.array(params[{j}], {np_type(val.dtype)})"
    if val.dtype is dt.bfloat16:
        x = f"_bf16({x})"
    shape = tuple(val.shape)
    if output:
        return f"np.full({shape!r}, {x})"
    return x if not shape else f"np.broadcast_to({x}, {shape!r})"


def emit(prog: Program, tile_elems: int = TILE_ELEMS, any_size: bool = False) -> str:
    """The source text of a module whose `program(inputs, params)` runs `prog`.

    `any_size`: a tiled kernel's rows per tile (and so its scratch arrays' shapes) are
    computed when the program runs, from numbers of its domain written as literals, and
    no ufunc buffer size is chosen by a row's length: every number that depends on a
    dynamic size is then a literal the size's program writes as `a*s+c`
    (runtime/symbolic.py)."""
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
        if a is None or a.kind is AllocKind.FRESH:
            return [f"v{v} = np.empty({shape}, {np_type(val.dtype)})"]
        if a.kind is AllocKind.SLOT:
            nb = math.prod(val.shape) * val.dtype.np.itemsize
            view = f"slots[{a.slot}][:{nb}].view({np_type(val.dtype)})"
            return [f"v{v} = {view}.reshape({shape})"]
        base = vals[a.of]
        return [f"v{a.of} = np.empty({tuple(base.shape)!r}, {np_type(base.dtype)})",
                f"v{v} = v{a.of}.reshape({shape})"]

    ctx = StepContext(prog)
    param_values = {s.out for s in prog.steps
                    if s.kind is StepKind.CONST and isinstance(s.arg, Param)}

    for step in prog.steps:
        if step.kind is StepKind.KERNEL:
            k = step.kernel
            tiled = k.tile_axis is not None
            gen = _Kernel(k, tiled, _tile_rows(k, tile_elems, any_size) if tiled else 0)
            # NOTE: a parameter that kernels only combine elementwise is a NumPy scalar
            gen.load_shapes = [() if v in ctx.scalars else vals[v].shape for v in k.loads]
            gen.param_loads = {j: vals[v].shape for j, v in enumerate(k.loads)
                               if v in param_values}
            parts.append(gen.emit())
            if gen.scratch and not tiled:  # pragma: no cover - direct kernels use none
                raise AssertionError("direct kernel with scratch")
            for _, v in k.stores:
                body.extend(alloc(v))
            args = [f"v{v}" for v in k.loads] + [f"v{v}" for _, v in k.stores]
            body.append(f"{k.name}({', '.join(args)})")
        elif step.kind is StepKind.VIEW:
            if prog.allocs.get(step.out, None) is not None and \
                    prog.allocs[step.out].kind is AllocKind.BASE:
                continue
            body.append(f"v{step.out} = " + RULES[step.op].view(f"v{step.srcs[0]}", step.arg))
        else:
            body.append(RULES[step.op].step(step, vals[step.out], stubs, ctx))
    if prog.slot_bytes:
        body.append("_POOL.append(slots)")
    body.append("return [" + ", ".join(f"v{o}" for o in prog.outputs) + "]")
    parts.extend(s + "\n" for s in stubs)
    parts.append("_POOL = []\n")
    parts.append("def program(inputs, params):\n" + "".join(f"    {ln}\n" for ln in body))
    return "".join(parts)
