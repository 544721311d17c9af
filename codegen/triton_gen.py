"""The Triton generator: one `@triton.jit` function per fused kernel of a `Program`.

    Program (codegen/kernel.py) ─► emit(prog) ─► a module's source: kernels + `program`

Each `Kernel` of the description becomes one Triton kernel of one of three forms:

* **pointwise** (no reduction, no matmul): a 1-D grid over the domain's elements,
  `BLOCK` elements a program; a load whose value is a fresh contiguous array of the
  domain's shape is read at the flat offset (so it compiles to vector loads), any
  other through its strides (runtime arguments: a view, a broadcast with stride 0);
* **reduction** (REDUCE_* statements over one set of axes, prologue and epilogue
  fused): rows (the kept axes) x columns (the reduced ones), `BLOCK_M` rows a
  program; one block of columns when they fit ("persistent": softmax and layer norm
  are one kernel), a loop over blocks of columns otherwise (allowed where nothing
  after a reduction needs the whole row again);
* **contraction** (one MATMUL of two loads, then an elementwise epilogue over its
  result): `tl.dot` over K in blocks, float32 accumulation, grouped program order.

Statements follow the reference interpreter (runtime/interpreter.py): float16 and
bfloat16 are computed in float32 and rounded to their dtype after every statement,
as NumPy's float16 loops round; divisions and square roots are correctly rounded
(`div_rn`, `sqrt_rn`); transcendental functions come from libdevice. A kernel the
generator cannot express (two sets of reduced axes, an integer matmul, ...) raises
`NotImplementedError` naming why; the caller runs that kernel on the host
(`_host_kernel`) and the debug report says so.

The host steps of a program (views, extern ops, constants) are NumPy, as in the
NumPy generator; kernels read and write its arrays through torch tensors sharing
their memory (runtime/triton_launch.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..ir import dtypes as dt
from ..ir.ops import REDUCE, Op
from .kernel import Kernel, Program, Ref, RefKind, Stmt
from .numpy_gen import RULES as NP_RULES
from .numpy_gen import arg_src, dtype_ref

__all__ = ["RULES", "emit", "kernel_plans", "kernel_signature", "kernel_source", "plan_kernel"]

# the largest row a persistent reduction keeps in one block (elements)
PERSISTENT_MAX = 16384
# columns a looped reduction reads per step
LOOP_BLOCK = 2048
# elements a pointwise program covers
POINTWISE_BLOCK = 1024
# elements of a reduction program's tile (BLOCK_M x BLOCK_N)
TILE = 4096

_TL = {dt.float32: "tl.float32", dt.float64: "tl.float64", dt.float16: "tl.float32",
       dt.bfloat16: "tl.float32", dt.int64: "tl.int64", dt.int32: "tl.int32",
       dt.int16: "tl.int16", dt.int8: "tl.int8", dt.uint8: "tl.uint8", dt.bool_: "tl.int1"}
# dtypes computed in float32 and rounded to themselves after each statement
_ROUNDED = {dt.float16: "tl.float16", dt.bfloat16: "tl.bfloat16"}

_LIBDEVICE = {Op.EXP: "exp", Op.LOG: "log", Op.SIN: "sin", Op.COS: "cos", Op.TAN: "tan",
              Op.TANH: "tanh", Op.LOG1P: "log1p", Op.EXPM1: "expm1", Op.EXP2: "exp2",
              Op.FLOOR: "floor", Op.CEIL: "ceil", Op.TRUNC: "trunc", Op.ROUND: "rint"}
_BINARY = {Op.ADD: "({} + {})", Op.SUB: "({} - {})", Op.MUL: "({} * {})",
           Op.LT: "({} < {})", Op.LE: "({} <= {})", Op.EQ: "({} == {})",
           Op.NE: "({} != {})", Op.AND: "({} & {})", Op.OR: "({} | {})",
           Op.XOR: "({} ^ {})"}


_SCALAR_POWERS = {2: "({0} * {0})", 0.5: "tl.sqrt_rn({0})", -1: "_div(1.0, {0})",
                  1: "({0} + 0)", 0: "({0} * 0 + 1)"}


def _float(s: Stmt) -> bool:
    return s.dtype.is_floating_point


def _rule_unary(s: Stmt, x: str) -> str:
    if s.op in _LIBDEVICE:
        if not s.srcs[0].dtype.is_floating_point:
            raise NotImplementedError(f"{s.op.name} of an integer operand")
        return f"libdevice.{_LIBDEVICE[s.op]}({x})"
    if s.op is Op.NEG:
        return f"(-{x})"
    if s.op is Op.ABS:
        return f"tl.abs({x})"
    if s.op is Op.SQRT:
        return f"tl.sqrt_rn({x})" if s.dtype is not dt.float64 else f"libdevice.sqrt({x})"
    if s.op is Op.RECIP:
        return f"_div(1.0, {x})"
    if s.op is Op.SIGN:
        return f"_sign({x})"
    if s.op is Op.NOT:
        return f"({x} == 0)" if s.dtype is dt.bool_ else f"(~{x})"
    raise NotImplementedError(f"no Triton rule for {s.op.name}")


def _rule_binary(s: Stmt, a: str, b: str) -> str:
    if s.op in _BINARY:
        return _BINARY[s.op].format(a, b)
    if s.op is Op.DIV:
        return f"_div({a}, {b})"
    if s.op is Op.MAX:
        return f"tl.maximum({a}, {b}, propagate_nan=tl.PropagateNan.ALL)" if _float(s) \
            else f"tl.maximum({a}, {b})"
    if s.op is Op.MIN:
        return f"tl.minimum({a}, {b}, propagate_nan=tl.PropagateNan.ALL)" if _float(s) \
            else f"tl.minimum({a}, {b})"
    if s.op is Op.POW:
        if not _float(s):
            raise NotImplementedError("an integer power")
        e = s.srcs[1]
        if e.kind == "const" and s.arg is None and e.index in _SCALAR_POWERS:
            # NOTE: NumPy's power by one number of these is exactly this (the
            # reference interpreter's, and PyTorch's, result)
            return _SCALAR_POWERS[e.index].format(a)
        return f"libdevice.pow({a}, {b})"
    if s.op is Op.FLOORDIV:
        return f"libdevice.floor(_div({a}, {b}))" if _float(s) else f"_floordiv({a}, {b})"
    if s.op is Op.MOD:
        return f"_fmod_floor({a}, {b})" if _float(s) else f"_mod({a}, {b})"
    raise NotImplementedError(f"no Triton rule for {s.op.name}")


def _rule_cast(s: Stmt, x: str) -> str:
    src = s.srcs[0].dtype
    if s.dtype is dt.bool_:
        return f"({x} != 0)"
    if s.dtype is src or (s.dtype in _ROUNDED and src.is_floating_point
                          and src is not dt.float64):
        return x  # rounded below, as every statement of a rounded dtype
    return f"{x}.to({_TL[s.dtype]})"


# Op -> how one statement is written (operand expressions in, expression out); a
# REDUCE_*, EXPAND or MATMUL statement is handled by the kernel's form
RULES = {op: _rule_unary for op in (*_LIBDEVICE, Op.NEG, Op.ABS, Op.SQRT, Op.RECIP, Op.SIGN,
                                    Op.NOT)}
RULES.update({op: _rule_binary for op in (*_BINARY, Op.DIV, Op.MAX, Op.MIN, Op.POW,
                                          Op.FLOORDIV, Op.MOD)})
RULES[Op.CAST] = _rule_cast
RULES[Op.WHERE] = lambda s, c, a, b: f"tl.where({c}, {a}, {b})"
RULES[Op.EXPAND] = lambda s, x: x  # a broadcast: the operand's index ignores the axis
FORM_OPS = REDUCE | {Op.MATMUL}

_HELPERS = '''
@triton.jit
def _div(a, b):
    return tl.div_rn(a, b)


@triton.jit
def _sign(x):
    return tl.where(x > 0, 1, tl.where(x < 0, -1, x)).to(x.dtype)


@triton.jit
def _floordiv(a, b):
    q = a // b
    r = a - q * b
    return tl.where((r != 0) & ((r < 0) != (b < 0)), q - 1, q)


@triton.jit
def _mod(a, b):
    r = a % b
    return tl.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


@triton.jit
def _fmod_floor(a, b):
    m = libdevice.fmod(a, b)
    return tl.where((m != 0) & ((b < 0) != (m < 0)), m + b, m)


@triton.jit
def _round_bf16(x):
    # the nearest bfloat16 (ties to even), kept as float32, as ir.dtypes.round_bf16
    bits = x.to(tl.uint32, bitcast=True)
    bits = (bits + (((bits >> 16) & 1) + 0x7FFF)) & 0xFFFF0000
    return tl.where(x != x, x, bits.to(tl.float32, bitcast=True))


@triton.jit
def _max_nan(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _min_nan(a, b):
    return tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _mul(a, b):
    return a * b
'''


def _literal(value, d: dt.DType, shape: str) -> str:
    """A constant of dtype d as a block of `shape` (a list's source)."""
    if d.is_floating_point:
        v = float(value)
        text = ("_NAN" if math.isnan(v) else ("_INF" if v > 0 else "_NINF")) \
            if not math.isfinite(v) else repr(v)
    elif d is dt.bool_:
        text = "1" if value else "0"
    else:
        text = repr(int(value))
    return f"tl.full({shape}, {text}, {_TL[d]})"


def _identity(op: Op, d: dt.DType) -> str:
    if op is Op.REDUCE_SUM:
        return "0"
    if op is Op.REDUCE_PROD:
        return "1"
    if d.is_floating_point:
        return "_NINF" if op is Op.REDUCE_MAX else "_INF"
    if d is dt.bool_:
        return "0" if op is Op.REDUCE_MAX else "1"
    import numpy as np
    info = np.iinfo(d.np)
    return repr(int(info.min if op is Op.REDUCE_MAX else info.max))


_COMBINE = {Op.REDUCE_SUM: "_add", Op.REDUCE_PROD: "_mul", Op.REDUCE_MAX: "_max_nan",
            Op.REDUCE_MIN: "_min_nan"}


@dataclass
class KernelPlan:
    """How one kernel is written: its form, blocks and the loads read flat."""

    form: str                      # "pointwise" | "reduction" | "contraction"
    axes: tuple[int, ...] = ()     # reduced axes (reduction) or () (others)
    rows: int = 1
    cols: int = 1
    looped: bool = False
    block_m: int = 1
    block_n: int = 1
    block_k: int = 1
    grid: tuple = ()
    flat: frozenset = field(default_factory=frozenset)  # loads read at flat offsets


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _reduced_axes(k: Kernel) -> tuple[int, ...]:
    sets = {tuple(sorted(s.arg)) for s in k.body if s.op in REDUCE}
    if len(sets) > 1:
        raise NotImplementedError(f"reductions over different axes {sorted(sets)} in one kernel")
    return sets.pop() if sets else ()


def _depends_on_reduce(k: Kernel) -> set[int]:
    """Statements computed from a reduction's result."""
    after: set[int] = set()
    for s in k.body:
        if s.op in REDUCE or any(r.kind == "local" and r.index in after for r in s.srcs):
            after.add(s.id)
    return after


def plan_kernel(k: Kernel, contiguous_loads: frozenset) -> KernelPlan:
    """The form and blocks of kernel k; `contiguous_loads`: positions of loads that are
    fresh contiguous arrays of the domain's shape."""
    if any(len(r.shape) != len(k.domain) for s in k.body for r in s.srcs
           if r.kind != "const") or any(len(s.shape) != len(k.domain) for s in k.body):
        raise NotImplementedError("a statement of another rank than the kernel's domain")
    matmuls = [s for s in k.body if s.op is Op.MATMUL]
    axes = _reduced_axes(k)
    if matmuls:
        return _plan_contraction(k, matmuls, axes)
    if not axes:
        n = k.numel
        block = min(POINTWISE_BLOCK, _pow2(max(n, 1)))
        flat = frozenset(j for j in contiguous_loads)
        return KernelPlan("pointwise", (), n, 1, False, block, 1, 1,
                          (max(1, -(-n // block)),), flat)
    cols = 1
    for a in axes:
        cols *= k.domain[a]
    rows = max(1, k.numel // max(cols, 1)) if cols else 0
    if cols == 0 or rows == 0:
        raise NotImplementedError("a reduction over an empty domain")
    after = _depends_on_reduce(k)
    full_after = [s for s in k.body if s.id in after and s.op not in REDUCE
                  and all(s.shape[a] == k.domain[a] for a in axes)]
    looped = cols > PERSISTENT_MAX
    if looped and full_after:
        raise NotImplementedError(f"a row of {cols} elements is read again after its "
                                  "reduction (too long for one block)")
    block_n = LOOP_BLOCK if looped else _pow2(cols)
    block_m = max(1, min(_pow2(rows), TILE // block_n))
    return KernelPlan("reduction", axes, rows, cols, looped, block_m, block_n, 1,
                      (-(-rows // block_m),))


def _plan_contraction(k: Kernel, matmuls, axes) -> KernelPlan:
    if len(matmuls) > 1 or axes:
        raise NotImplementedError("a matmul fused with another matmul or a reduction")
    mm = matmuls[0]
    if any(r.kind != "load" for r in mm.srcs):
        raise NotImplementedError("a matmul whose operands are computed in the kernel")
    if not mm.dtype.is_floating_point or mm.dtype is dt.float64:
        raise NotImplementedError(f"a {mm.dtype.name} matmul")
    if len(k.domain) < 2 or mm.shape != k.domain:
        raise NotImplementedError("a matmul whose result is not the kernel's domain")
    m, n = k.domain[-2], k.domain[-1]
    kk = mm.srcs[0].shape[-1]
    # NOTE: a float32 product is exact (FMA, not TF32): it holds a smaller tile in
    # registers without spilling
    big = 32 if mm.dtype is dt.float32 else 64
    bm = min(big, max(16, _pow2(m)))
    bn = min(big, max(16, _pow2(n)))
    bk = min(32, max(16, _pow2(kk)))
    batch = 1
    for s in k.domain[:-2]:
        batch *= s
    return KernelPlan("contraction", (), m, n, False, bm, bn, bk,
                      (-(-m // bm) * -(-n // bn), batch))


# ---------------------------------------------------------------------------
# kernel source


class _Writer:
    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, text: str, depth: int = 1) -> None:
        self.lines.append("    " * depth + text)


def _index_names(domain, axes_of_part, var: str, prefix: str, w: _Writer, depth=1) -> dict:
    """Index expressions of the axes `axes_of_part` from the flat index `var` over them
    (row-major): {axis: expression name}."""
    names = {}
    inner = 1
    for a in reversed(axes_of_part):
        size = domain[a]
        name = f"{prefix}{a}"
        if size == 1:
            w(f"{name} = 0", depth)
        elif inner == 1 and a == axes_of_part[0]:
            w(f"{name} = {var}", depth)
        elif inner == 1:
            w(f"{name} = {var} % {size}", depth)
        elif a == axes_of_part[0]:
            w(f"{name} = {var} // {inner}", depth)
        else:
            w(f"{name} = ({var} // {inner}) % {size}", depth)
        names[a] = name
        inner *= size
    return names


def _offset(shape, strides: list[str], idx: dict, axes, zero: str = "0") -> str:
    """The element offset of a value of `shape` at the index `idx` over `axes`; `zero`
    where no axis moves it (a block of zeros of the block's shape)."""
    terms = [f"{idx[a]} * {strides[a]}" for a in axes if shape[a] != 1]
    return " + ".join(terms) if terms else zero


def kernel_source(k: Kernel, plan: KernelPlan, name: str | None = None) -> str:
    """The `@triton.jit` function of kernel k, written as `plan` says."""
    name = name or k.name
    nd = len(k.domain)
    load_args = []
    for j in range(len(k.loads)):
        load_args.append(f"in{j}")
        if j not in plan.flat:
            load_args.extend(f"in{j}_s{d}" for d in range(nd))
    store_args = [f"out{j}" for j in range(len(k.stores))]
    w = _Writer()
    w(f"def {name}({', '.join(load_args + store_args)}):", 0)
    w(f'"""{plan.form} over {k.domain}: ' + "; ".join(
        f"s{s.id} {s.op.name}" for s in k.body) + '"""')
    form = {"pointwise": _pointwise, "reduction": _reduction, "contraction": _contraction}
    form[plan.form](k, plan, w)
    return "@triton.jit\n" + "\n".join(w.lines) + "\n"


def _strides(j: int, plan: KernelPlan, nd: int) -> list[str]:
    return [f"in{j}_s{d}" for d in range(nd)]


class _Body:
    """Writes a kernel's statements: each as `s{id}`, rounded where its dtype asks."""

    def __init__(self, k: Kernel, w: _Writer, load_expr, block_shape: str, depth: int = 1):
        self.k, self.w, self.load_expr, self.shape, self.depth = k, w, load_expr, \
            block_shape, depth
        self.loaded: dict[int, str] = {}

    def ref(self, r: Ref) -> str:
        if r.kind == "local":
            return f"s{r.index}"
        if r.kind == "const":
            return _literal(r.index, r.dtype, self.shape)
        if r.index not in self.loaded:
            name = f"x{r.index}"
            self.w(f"{name} = {self.load_expr(r.index)}", self.depth)
            if r.dtype in _ROUNDED:
                self.w(f"{name} = {name}.to(tl.float32)", self.depth)
            self.loaded[r.index] = name
        return self.loaded[r.index]

    def stmt(self, s: Stmt) -> None:
        rule = RULES.get(s.op)
        if rule is None:
            raise NotImplementedError(f"no Triton rule for {s.op.name}")
        expr = rule(s, *[self.ref(r) for r in s.srcs])
        self.assign(s, expr)

    def assign(self, s: Stmt, expr: str) -> None:
        if s.dtype is dt.bfloat16:
            expr = f"_round_bf16({expr})"
        elif s.dtype in _ROUNDED:
            expr = f"({expr}).to({_ROUNDED[s.dtype]}).to(tl.float32)"
        self.w(f"s{s.id} = {expr}", self.depth)


def _pointwise(k: Kernel, plan: KernelPlan, w: _Writer) -> None:
    nd = len(k.domain)
    w(f"offs = tl.program_id(0) * {plan.block_m} + tl.arange(0, {plan.block_m})")
    w(f"mask = offs < {plan.rows}")
    needs_index = any(j not in plan.flat for j in range(len(k.loads)))
    idx = _index_names(k.domain, tuple(range(nd)), "offs", "i", w) if needs_index else {}

    def load(j: int) -> str:
        if j in plan.flat:
            return f"tl.load(in{j} + offs, mask=mask)"
        shape = _load_shape(k, j)
        off = _offset(shape, _strides(j, plan, nd), idx, range(nd), "offs * 0")
        return f"tl.load(in{j} + {off}, mask=mask)"

    body = _Body(k, w, load, f"[{plan.block_m}]")
    for s in k.body:
        body.stmt(s)
    for j, (sid, _) in enumerate(k.stores):
        if k.body[sid].shape != k.domain:
            raise NotImplementedError("a pointwise kernel storing a broadcast value")
        w(f"tl.store(out{j} + offs, s{sid}, mask=mask)")


def _load_shape(k: Kernel, j: int) -> tuple[int, ...]:
    for s in k.body:
        for r in s.srcs:
            if r.kind == "load" and r.index == j:
                return r.shape
    raise AssertionError(f"load {j} of {k.name} is never read")


def _reduction(k: Kernel, plan: KernelPlan, w: _Writer) -> None:
    nd = len(k.domain)
    axes = plan.axes
    kept = tuple(a for a in range(nd) if a not in axes)
    bm, bn = plan.block_m, plan.block_n
    w(f"rows = tl.program_id(0) * {bm} + tl.arange(0, {bm})[:, None]")
    w(f"rmask = rows < {plan.rows}")
    ridx = _index_names(k.domain, kept, "rows", "r", w) if kept else {}

    def is_row(shape) -> bool:
        return all(shape[a] == 1 for a in axes)

    depth = 1
    after = _depends_on_reduce(k)
    if plan.looped:
        for s in k.body:
            if s.op in REDUCE:
                w(f"acc{s.id} = tl.full([{bm}, 1], {_identity(s.op, s.dtype)}, "
                  f"{_acc_tl(s.dtype)})")
        w(f"for c0 in range(0, {plan.cols}, {bn}):")
        depth = 2
        w(f"cols = c0 + tl.arange(0, {bn})[None, :]", depth)
    else:
        w(f"cols = tl.arange(0, {bn})[None, :]")
    w(f"cmask = cols < {plan.cols}", depth)
    w("mask = rmask & cmask", depth)
    cidx = _index_names(k.domain, axes, "cols", "c", w, depth)
    idx = {**ridx, **cidx}

    def load(j: int) -> str:
        shape = _load_shape(k, j)
        strides = _strides(j, plan, nd)
        if is_row(shape):
            off = _offset(shape, strides, idx, kept, "rows * 0")
            return f"tl.load(in{j} + {off}, mask=rmask)"
        off = _offset(shape, strides, idx, range(nd), "(rows + cols) * 0")
        return f"tl.load(in{j} + {off}, mask=mask)"

    body = _Body(k, w, load, f"[{bm}, {bn}]", depth)
    stores = {sid: j for j, (sid, _) in enumerate(k.stores)}
    late: list[Stmt] = []
    for s in k.body:
        if plan.looped and s.id in after and s.op not in REDUCE:
            late.append(s)
            continue
        if s.op in REDUCE:
            x = body.ref(s.srcs[0])
            ident = _identity(s.op, s.dtype)
            src = f"tl.where(mask, {x}.to({_acc_tl(s.dtype)}), {ident})"
            red = f"tl.reduce({src}, 1, {_COMBINE[s.op]}, keep_dims=True)"
            if plan.looped:
                w(f"acc{s.id} = {_COMBINE[s.op]}(acc{s.id}, {red})", depth)
            else:
                body.assign(s, _from_acc(red, s.dtype))
        else:
            body.stmt(s)
        if s.id in stores and not (plan.looped and s.op in REDUCE):
            _store(w, k, s, stores[s.id], idx, kept, axes, is_row(s.shape), depth)
    if plan.looped:
        body.depth = 1
        for s in k.body:
            if s.op in REDUCE:
                body.assign(s, _from_acc(f"acc{s.id}", s.dtype))
                if s.id in stores:
                    _store(w, k, s, stores[s.id], idx, kept, axes, True, 1)
        body.loaded = {}  # NOTE: loads inside the loop are not defined after it
        for s in late:
            body.stmt(s)
            if s.id in stores:
                _store(w, k, s, stores[s.id], idx, kept, axes, True, 1)


def _acc_tl(d: dt.DType) -> str:
    """The dtype a reduction of dtype d accumulates in."""
    return "tl.float32" if d in _ROUNDED else ("tl.int8" if d is dt.bool_ else _TL[d])


def _from_acc(expr: str, d: dt.DType) -> str:
    return f"({expr}).to(tl.int1)" if d is dt.bool_ else expr


def _store(w, k, s, j, idx, kept, axes, row: bool, depth: int) -> None:
    """Store statement s into output j (a contiguous array of s's shape)."""
    shape = s.shape
    strides = _contiguous(shape)
    if row:
        off = _offset(shape, [str(x) for x in strides], idx, kept, "rows * 0")
        w(f"tl.store(out{j} + {off}, s{s.id}, mask=rmask)", depth)
    else:
        off = _offset(shape, [str(x) for x in strides], idx, range(len(shape)),
                      "(rows + cols) * 0")
        w(f"tl.store(out{j} + {off}, s{s.id}, mask=mask)", depth)


def _contiguous(shape) -> list[int]:
    out, n = [], 1
    for size in reversed(shape):
        out.append(n)
        n *= size
    return list(reversed(out))


def _contraction(k: Kernel, plan: KernelPlan, w: _Writer) -> None:
    nd = len(k.domain)
    mm = next(s for s in k.body if s.op is Op.MATMUL)
    a, b = mm.srcs
    kk = a.shape[-1]
    bm, bn, bk = plan.block_m, plan.block_n, plan.block_k
    m, n = k.domain[-2], k.domain[-1]
    grid_m, grid_n = -(-m // bm), -(-n // bn)
    w("pid = tl.program_id(0)")
    w(f"group = pid // ({8} * {grid_n})")
    w("first_m = group * 8")
    w(f"size_m = tl.minimum({grid_m} - first_m, 8)")
    w("pid_m = first_m + (pid % size_m)")
    w(f"pid_n = (pid % (8 * {grid_n})) // size_m")
    w("batch = tl.program_id(1)")
    bidx = _index_names(k.domain, tuple(range(nd - 2)), "batch", "b", w) if nd > 2 else {}
    w(f"rows = pid_m * {bm} + tl.arange(0, {bm})[:, None]")
    w(f"cols = pid_n * {bn} + tl.arange(0, {bn})[None, :]")
    w(f"rmask = rows < {m}")
    w(f"cmask = cols < {n}")
    w("mask = rmask & cmask")
    w(f"ks = tl.arange(0, {bk})")
    sa = _strides(a.index, plan, nd)
    sb = _strides(b.index, plan, nd)
    batch_a = _offset(a.shape, sa, bidx, range(nd - 2))
    batch_b = _offset(b.shape, sb, bidx, range(nd - 2))
    w(f"acc = tl.zeros([{bm}, {bn}], tl.float32)")
    w(f"for k0 in range(0, {kk}, {bk}):")
    w("kk = k0 + ks", 2)
    w(f"ta = tl.load(in{a.index} + {batch_a} + rows * {sa[-2]} + kk[None, :] * {sa[-1]}, "
      f"mask=rmask & (kk[None, :] < {kk}), other=0.0)", 2)
    w(f"tb = tl.load(in{b.index} + {batch_b} + kk[:, None] * {sb[-2]} + cols * {sb[-1]}, "
      f"mask=(kk[:, None] < {kk}) & cmask, other=0.0)", 2)
    precision = ', input_precision="ieee"' if a.dtype is dt.float32 else ""
    if a.dtype in _ROUNDED:
        w(f"ta = ta.to({_ROUNDED[a.dtype]})", 2)
        w(f"tb = tb.to({_ROUNDED[b.dtype]})", 2)
    w(f"acc = tl.dot(ta, tb, acc{precision})", 2)
    idx = {**bidx, nd - 2: "rows", nd - 1: "cols"}

    def load(j: int) -> str:
        shape = _load_shape(k, j)
        off = _offset(shape, _strides(j, plan, nd), idx, range(nd), "(rows + cols) * 0")
        return f"tl.load(in{j} + {off}, mask=mask)"

    body = _Body(k, w, load, f"[{bm}, {bn}]")
    stores = {sid: j for j, (sid, _) in enumerate(k.stores)}
    for s in k.body:
        if s is mm:
            body.assign(s, "acc" if s.dtype in _ROUNDED or s.dtype is dt.float32
                        else f"acc.to({_TL[s.dtype]})")
        else:
            body.stmt(s)
        if s.id in stores:
            shape = s.shape
            off = _offset(shape, [str(x) for x in _contiguous(shape)], idx, range(nd),
                          "(rows + cols) * 0")
            w(f"tl.store(out{stores[s.id]} + {off}, s{s.id}, mask=mask)")


# ---------------------------------------------------------------------------
# the program: host steps in NumPy, kernels launched


def _fresh_contiguous(prog: Program, k: Kernel) -> frozenset:
    """Positions of k's loads that are whole arrays of the domain's shape (made by a
    kernel, an extern step or a constant, or an input): those read at flat offsets
    (`_launch` copies one that is not contiguous after all)."""
    made = {v for s in prog.steps if s.kind == "kernel" for _, v in s.kernel.stores}
    made |= {v for _, v in prog.inputs}
    made |= {s.out for s in prog.steps if s.kind in ("extern", "const")}
    out = set()
    shapes = {v.id: v.shape for v in prog.values}
    for j, v in enumerate(k.loads):
        if v in made and shapes[v] == k.domain:
            out.add(j)
    return frozenset(out)


HEADER = '''import math

import numpy as np
import triton
import triton.language as tl

from ember.codegen.kernel import Kernel, Ref, RefKind, Stmt
from ember.ir import dtypes as dt
from ember.ir.ops import Op
from ember.ir.view import View
from ember.runtime.compiled import _bf16, _extern, _strided_at, _Stub, _write, _write_into
from ember.runtime.triton_launch import _host_kernel_of, _input, _launch, _output
from ember.runtime.triton_launch import libdevice as _libdevice

libdevice = _libdevice()

_INF = tl.constexpr(float("inf"))
_NINF = tl.constexpr(float("-inf"))
_NAN = tl.constexpr(float("nan"))
'''


def emit(prog: Program) -> tuple[str, list[str]]:
    """(module source, notes): Triton kernels and the `program(inputs, params)` that
    runs the steps; a note names each kernel run on the host and why."""
    parts = [HEADER, _HELPERS]
    body: list[str] = []
    stubs: list[str] = []
    notes: list[str] = []
    vals = {v.id: v for v in prog.values}
    for pos, v in prog.inputs:
        # NOTE: an input is its buffer's flat array
        body.append(f"v{v} = _input(inputs[{pos}], {tuple(vals[v].shape)!r})")
    for step in prog.steps:
        if step.kind == "kernel":
            k = step.kernel
            try:
                plan = plan_kernel(k, _fresh_contiguous(prog, k))
                src = kernel_source(k, plan)
            except NotImplementedError as e:
                notes.append(f"{k.name} runs on the host: {e}")
                name = f"_h{len(stubs)}"
                stubs.append(f"{name} = _host_kernel_of({_kernel_literal(k)})")
                loads = ", ".join(f"v{v}" for v in k.loads)
                outs = ", ".join(f"v{v}" for _, v in k.stores)
                body.append(f"{outs}, = {name}([{loads}])")
                continue
            parts.append(src)
            outs = [(sid, v) for sid, v in k.stores]
            for _, v in outs:
                val = vals[v]
                body.append(f"v{v} = np.empty({tuple(val.shape)!r}, {_np_storage(val.dtype)})")
            loads = ", ".join(f"v{v}" for v in k.loads)
            flat = sorted(plan.flat)
            stores = ", ".join(f"v{v}" for _, v in outs)
            body.append(f"_launch({k.name}, {plan.grid!r}, [{loads}], [{stores}], {flat!r})")
        elif step.kind == "view":
            # NOTE: host steps are the NumPy generator's, one rule table for both
            body.append(f"v{step.out} = " + NP_RULES[step.op].view(f"v{step.srcs[0]}",
                                                                   step.arg))
        else:
            body.append(NP_RULES[step.op].step(step, vals[step.out], stubs))
    body.append("return [" + ", ".join(f"_output(v{o})" for o in prog.outputs) + "]")
    parts.extend(s + "\n" for s in stubs)
    parts.append("\ndef program(inputs, params):\n" + "".join(f"    {ln}\n" for ln in body))
    return "\n\n".join(p.strip("\n") + "\n" for p in parts), notes


def kernel_plans(prog: Program) -> list[tuple[Kernel, KernelPlan]]:
    """Each kernel of prog that runs as Triton, with its plan."""
    out = []
    for step in prog.steps:
        if step.kind == "kernel":
            try:
                out.append((step.kernel, plan_kernel(step.kernel,
                                                     _fresh_contiguous(prog, step.kernel))))
            except NotImplementedError:
                pass
    return out


# a value's element type in device memory (bfloat16 is float32 in ember's CPU memory)
_POINTER = {dt.float32: "*fp32", dt.float64: "*fp64", dt.float16: "*fp16",
            dt.bfloat16: "*bf16", dt.int64: "*i64", dt.int32: "*i32", dt.int16: "*i16",
            dt.int8: "*i8", dt.uint8: "*u8", dt.bool_: "*i1"}


def kernel_signature(prog: Program, k: Kernel, plan: KernelPlan) -> dict[str, str]:
    """The argument types of kernel k as its launcher passes them on a GPU (Triton's
    `ASTSource` signature): each operand's pointer, then its strides (32-bit ints)."""
    vals = {v.id: v for v in prog.values}
    sig = {}
    for j, v in enumerate(k.loads):
        sig[f"in{j}"] = _POINTER[vals[v].dtype]
        if j not in plan.flat:
            sig.update({f"in{j}_s{d}": "i32" for d in range(len(k.domain))})
    for j, (_, v) in enumerate(k.stores):
        sig[f"out{j}"] = _POINTER[vals[v].dtype]
    return sig


def _np_storage(d: dt.DType) -> str:
    return f"np.dtype({d.np.name!r})" if d is not dt.bool_ else "np.bool_"


def _kernel_literal(k: Kernel) -> str:
    """Source that rebuilds kernel k (for the host fallback)."""
    def ref(r: Ref) -> str:
        return (f"Ref(RefKind.{RefKind(r.kind).name}, {r.index!r}, {dtype_ref(r.dtype)}, "
                f"{tuple(r.shape)!r})")

    stmts = ", ".join(
        f"Stmt({s.id}, Op.{s.op.name}, ({''.join(ref(r) + ', ' for r in s.srcs)}), "
        f"{arg_src(s.arg) if s.arg is not None else None}, {dtype_ref(s.dtype)}, "
        f"{tuple(s.shape)!r})" for s in k.body)
    return (f"Kernel({k.name!r}, {tuple(k.domain)!r}, {k.tile_axis!r}, {tuple(k.loads)!r}, "
            f"({stmts},), {tuple(k.stores)!r})")
