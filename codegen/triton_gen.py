"""The Triton generator: one `@triton.jit` function per fused kernel of a `Program`.

    Program (codegen/kernel.py) ─► emit(prog) ─► a module's source: kernels + `program`

Each `Kernel` of the description becomes one Triton kernel of the form its kind
says (`Kernel.kind`, `reduce_axes`, `contraction` and `epilogue`, computed once in
codegen/kernel.py; `plan_kernel` adds the blocks and the grid):

* **pointwise** (no reduction, no matmul): a 1-D grid over the domain's elements,
  `BLOCK` elements a program; a load whose value (or whose View's base) is a
  contiguous array of the domain's shape is read at the flat offset (so it compiles
  to vector loads), any other through its strides; a stored value broadcast over the
  domain (size 1 on some axes) is written by the elements at index 0 on those axes;
* **reduction** (REDUCE_* statements over one set of axes, prologue and epilogue
  fused): rows (the kept axes) x columns (the reduced ones), `BLOCK_M` rows a
  program; one block of columns when they fit ("persistent": softmax and layer norm
  are one kernel), a loop over blocks of columns otherwise (allowed where nothing
  after a reduction needs the whole row again); rows of no columns are the
  reduction's identity (max and min, which have none, raise the interpreter's error);
* **contraction** (one MATMUL of two loads, then an elementwise epilogue over its
  result): `tl.dot` over K in blocks, float32 accumulation, grouped program order;
  an integer matmul is exact (no `tl.dot`: each K block's products broadcast to
  [BLOCK_M, BLOCK_K, BLOCK_N] and summed, wrapping in the dtype as NumPy's).

A matmul's and a reduction's block sizes are constexpr arguments (`BLOCK_M`, ...,
defaulting to the heuristic's choice); `KernelPlan.configs` lists the candidates
(blocks, `num_warps`, `num_stages`) runtime/autotune.py picks from, and the module
wraps each such kernel in its `Tuned` (`_tuned_<name>`), which `Launch` calls.

Random numbers are computed in the kernel (the Triton back end places RAND in
kernels, codegen/backend.py): `_philox_at` runs Philox 4x32-10 in uint32 words
(`tl.umulhi` for the high products) on the element's row-major index in the RAND
value, with the counter layout of runtime/philox.py, and the stream's top bits make
the float exactly as `philox.uniform` does; the seed and sequence number are
runtime arguments (`r<j>_k0`, `r<j>_k1`, `r<j>_seq`: `_rand_args` of parameter j),
so a new seed reuses the compiled kernel. randn's Box-Muller is the graph's own
LOG, SQRT and COS statements, fused with the draws.

Statements follow the reference interpreter (runtime/interpreter.py): float16 and
bfloat16 are computed in float32 and rounded to their dtype after every statement,
as NumPy's float16 loops round; divisions and square roots are correctly rounded
(`div_rn`, `sqrt_rn`); transcendental functions come from libdevice. A kernel the
generator cannot express (two sets of reduced axes, random numbers past 2**31
elements, ...) raises `NotImplementedError` naming why; the caller runs that kernel
on the host (`_host_kernel`) and the debug report says so.

A load that is a view of a program value (`Kernel.views`: the chain of view steps
composed into one View of its base) reads the base by index arithmetic with the
View's strides and offset as constants (0 for a broadcast, negative for a flip);
the view steps only kernels read that way are not run on the host at all
(`_needed`). A load whose chain does not compose (a reshape of a transposed view)
is the host's view, read through its strides (runtime arguments).

The host steps of a program (the other views, extern ops, constants) are NumPy, as in
the NumPy generator; kernels read and write its arrays through torch tensors sharing
their memory (runtime/triton_launch.py).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field

from ..ir import dtypes as dt
from ..ir.ops import REDUCE, Op
from .kernel import Kernel, KernelKind, Program, Ref, RefKind, Stmt
from .numpy_gen import RULES as NP_RULES
from .numpy_gen import StepContext, arg_src, dtype_ref

__all__ = ["RULES", "block_constexprs", "config_grid", "emit", "kernel_args", "kernel_plans",
           "kernel_signature", "kernel_source", "plan_kernel"]

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
              Op.FLOOR: "floor", Op.CEIL: "ceil", Op.TRUNC: "trunc", Op.ROUND: "rint",
              Op.ERF: "erf", Op.ERFC: "erfc", Op.ERFINV: "erfinv"}
# rounding an integer changes nothing
_INTEGER_IDENTITY = {Op.FLOOR, Op.CEIL, Op.TRUNC, Op.ROUND}
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
            if s.op in _INTEGER_IDENTITY and s.dtype is s.srcs[0].dtype:
                return f"({x} + 0)"
            raise NotImplementedError(f"{s.op.name} of an integer operand")
        return f"libdevice.{_LIBDEVICE[s.op]}({x})"
    if s.op is Op.NEG:
        return f"(-{x})"
    if s.op is Op.ABS:
        return f"tl.abs({x})"
    if s.op is Op.SQRT:
        return f"tl.sqrt_rn({x})" if s.dtype is not dt.float64 else f"libdevice.sqrt({x})"
    if s.op is Op.RECIP:
        return _divide(s, "1.0", x)
    if s.op is Op.SIGN:
        # NOTE: an unsigned operand has no negative literal to compare with
        return f"({x} > 0).to({x}.dtype)" if s.dtype is dt.uint8 else f"_sign({x})"
    if s.op is Op.NOT:
        return f"({x} == 0)" if s.dtype is dt.bool_ else f"(~{x})"
    raise NotImplementedError(f"no Triton rule for {s.op.name}")


def _divide(s: Stmt, a: str, b: str) -> str:
    """a / b correctly rounded: `div_rn` is float32's; float64's `/` is IEEE's already;
    integers divide as NumPy's true division does, in float64, truncated to their dtype."""
    if not _float(s):
        return f"({a}.to(tl.float64) / {b}.to(tl.float64)).to({_TL[s.dtype]})"
    return f"({a} / {b})" if s.dtype is dt.float64 else f"_div({a}, {b})"


# NOTE: bool arithmetic is logical (NumPy's and the interpreter's): True + True is True
_BOOL = {Op.ADD: "({} | {})", Op.MUL: "({} & {})", Op.MAX: "({} | {})", Op.MIN: "({} & {})"}


def _rule_binary(s: Stmt, a: str, b: str) -> str:
    if s.dtype is dt.bool_ and s.op in _BOOL:
        return _BOOL[s.op].format(a, b)
    if s.op in _BINARY:
        return _BINARY[s.op].format(a, b)
    if s.op is Op.DIV:
        return _divide(s, a, b)
    if s.op is Op.MAX:
        return f"tl.maximum({a}, {b}, propagate_nan=tl.PropagateNan.ALL)" if _float(s) \
            else f"tl.maximum({a}, {b})"
    if s.op is Op.MIN:
        return f"tl.minimum({a}, {b}, propagate_nan=tl.PropagateNan.ALL)" if _float(s) \
            else f"tl.minimum({a}, {b})"
    if s.op is Op.POW:
        if not _float(s):
            if s.srcs[0].dtype is not s.srcs[1].dtype:
                raise NotImplementedError("a power of mixed operands")
            if s.dtype is dt.bool_:
                # NOTE: NumPy's bool power (the interpreter's) is int8's cast back: a ** b
                # is 1 where b is 0, a where b is 1
                return f"({a} | ({b} == 0))"
            return f"_ipow({a}, {b})"
        e = s.srcs[1]
        if e.kind == "const" and s.arg is None and e.index in _SCALAR_POWERS \
                and s.dtype is not dt.float64:
            # NOTE: NumPy's power by one number of these is exactly this (the
            # reference interpreter's, and PyTorch's, result)
            return _SCALAR_POWERS[e.index].format(a)
        return f"libdevice.pow({a}, {b})"
    if s.op is Op.FLOORDIV:
        return f"_floordiv_f({a}, {b})" if _float(s) else f"_floordiv({a}, {b})"
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
def _floordiv_f(a, b):
    # NumPy's float floor_divide (npy_divmod), which the reference interpreter runs
    m = libdevice.fmod(a, b)
    if a.dtype.is_fp64():
        q = (a - m) / b
        whole = a / b
    else:
        q = tl.div_rn(a - m, b)
        whole = tl.div_rn(a, b)
    q = tl.where((m != 0) & ((b < 0) != (m < 0)), q - 1.0, q)
    f = libdevice.floor(q)
    f = tl.where(q - f > 0.5, f + 1.0, f)
    f = tl.where(q == 0, whole * 0.0, f)
    return tl.where(b == 0, whole, f)


@triton.jit
def _ipow(a, b):
    # an integer power by squaring, wrapping as NumPy's; as torch (and the reference
    # interpreter), x ** -k is 0 for |x| > 1, 1 for x = 1, +-1 for x = -1
    base = a
    e = tl.where(b < 0, 0, b)
    r = a * 0 + 1
    for _ in range(63):
        r = tl.where((e & 1) != 0, r * base, r)
        base = base * base
        e = e >> 1
    if a.dtype.is_int_signed():
        odd = (b % 2) != 0
        small = tl.where(a == 1, 1, tl.where(a == -1, tl.where(odd, -1, 1), 0)).to(a.dtype)
        r = tl.where(b < 0, small, r)
    return r


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
def _philox_at(idx, k0, k1, seq):
    # Philox 4x32-10 (runtime/philox.py) of counter (idx, 0, seq, 0) and key (k0, k1), in
    # uint32 words: the high half of each 32x32-bit product from tl.umulhi
    c0 = idx.to(tl.uint32)
    zero = c0 * 0
    c1 = zero
    c2 = zero + seq.to(tl.uint32)
    c3 = zero
    key0 = zero + k0.to(tl.uint32)
    key1 = zero + k1.to(tl.uint32)
    for _ in tl.static_range(10):
        hi0 = tl.umulhi(c0, _PHILOX_M0)
        lo0 = c0 * _PHILOX_M0
        hi1 = tl.umulhi(c2, _PHILOX_M1)
        lo1 = c2 * _PHILOX_M1
        c0 = hi1 ^ c1 ^ key0
        c1 = lo1
        c2 = hi0 ^ c3 ^ key1
        c3 = lo0
        key0 = key0 + _PHILOX_W0
        key1 = key1 + _PHILOX_W1
    return c0, c1, c2, c3


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


# the random bits a uniform float of a dtype holds (runtime/philox.py's)
_MANTISSA = {dt.float64: 53, dt.float32: 24, dt.float16: 11, dt.bfloat16: 8}

_COMBINE = {Op.REDUCE_SUM: "_add", Op.REDUCE_PROD: "_mul", Op.REDUCE_MAX: "_max_nan",
            Op.REDUCE_MIN: "_min_nan"}


@dataclass
class KernelPlan:
    """How one kernel is written: its form, blocks and the loads read flat."""

    form: KernelKind               # the kernel's kind (codegen/kernel.py's `classify`)
    axes: tuple[int, ...] = ()     # reduced axes (reduction) or () (others)
    rows: int = 1
    cols: int = 1
    looped: bool = False
    block_m: int = 1
    block_n: int = 1
    block_k: int = 1
    grid: tuple = ()
    flat: frozenset = field(default_factory=frozenset)  # loads read at flat offsets
    # loads read from their base through a composed View (constant strides and offset)
    views: dict = field(default_factory=dict)
    # candidate configs (the kernel's constexpr blocks, num_warps, num_stages), the
    # heuristic's first: runtime/autotune.py picks one (matmuls and reductions only)
    configs: tuple = ()

    def no_strides(self) -> frozenset:
        """Loads that take no stride arguments (flat, or through a constant View)."""
        return self.flat | frozenset(self.views)


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _reduced_axes(k: Kernel) -> tuple[int, ...]:
    if len(k.reduce_axes) > 1:
        raise NotImplementedError(f"reductions over different axes {list(k.reduce_axes)} in "
                                  "one kernel")
    return k.reduce_axes[0] if k.reduce_axes else ()


def plan_kernel(k: Kernel, contiguous_loads: frozenset) -> KernelPlan:
    """The form and blocks of kernel k; `contiguous_loads`: positions of loads that are
    fresh contiguous arrays of the domain's shape."""
    if any(len(r.shape) != len(k.domain) for s in k.body for r in s.srcs
           if r.kind != "const") or any(len(s.shape) != len(k.domain) for s in k.body):
        raise NotImplementedError("a statement of another rank than the kernel's domain")
    plan = _plan_form(k, contiguous_loads)
    for j, composed in enumerate(k.views or ()):
        if composed is None or j in plan.flat:
            continue
        view = composed[1]
        if plan.form is KernelKind.POINTWISE and view.offset == 0 and view.is_contiguous() \
                and tuple(view.shape) == tuple(k.domain):
            plan.flat = plan.flat | {j}  # NOTE: its base, read at flat offsets (vector loads)
        plan.views[j] = view
    return plan


def _plan_form(k: Kernel, contiguous_loads: frozenset) -> KernelPlan:
    axes = _reduced_axes(k)
    if k.kind is KernelKind.CONTRACTION:
        return _plan_contraction(k, [s for s in k.body if s.op is Op.MATMUL], axes)
    if k.kind is KernelKind.POINTWISE:
        n = k.numel
        block = min(POINTWISE_BLOCK, _pow2(max(n, 1)))
        flat = frozenset(j for j in contiguous_loads)
        return KernelPlan(KernelKind.POINTWISE, (), n, 1, False, block, 1, 1,
                          (max(1, -(-n // block)),), flat)
    cols = math.prod(k.domain[a] for a in axes)
    rows = math.prod(k.domain[a] for a in range(len(k.domain)) if a not in axes)
    if cols == 0:
        for s in k.body:
            if s.op in (Op.REDUCE_MAX, Op.REDUCE_MIN):
                # NOTE: the reference interpreter's error (max/min have no identity; the
                # tracer raises PyTorch's before such a graph is built)
                raise RuntimeError(
                    f"max/min of an empty tensor of shape {s.srcs[0].shape} over dims "
                    f"{list(s.arg)}: the operation has no identity; specify a non-empty dim")
    full_after = [s for s in k.body if s.id in k.epilogue and s.op not in REDUCE
                  and all(s.shape[a] == k.domain[a] for a in axes)]
    looped = cols > PERSISTENT_MAX
    if looped and full_after:
        raise NotImplementedError(f"a row of {cols} elements is read again after its "
                                  "reduction (too long for one block)")
    # NOTE: an empty row reduces to the identity: one masked block of columns reads nothing
    configs = _reduction_configs(rows, max(cols, 1), looped)
    first = configs[0]
    return KernelPlan(KernelKind.REDUCTION, axes, rows, cols, looped, first["BLOCK_M"],
                      first["BLOCK_N"], 1, _reduction_grid(rows, first), configs=configs)


def _reduction_grid(rows: int, config: dict) -> tuple[int, ...]:
    return (max(1, -(-rows // config["BLOCK_M"])),)


def _config(warps: int, stages: int, **blocks: int) -> dict:
    return {**blocks, "num_warps": warps, "num_stages": stages}


def _distinct(configs) -> tuple[dict, ...]:
    out = []
    for c in configs:
        if c not in out:
            out.append(c)
    return tuple(out)


def _reduction_configs(rows: int, cols: int, looped: bool) -> tuple[dict, ...]:
    """Candidate blocks and warps of a reduction, the heuristic's first: a tile of `TILE`
    elements (a whole row when it fits: `PERSISTENT_MAX`), four warps; then half and twice
    the rows a program, and more warps for long rows. Stages are Triton's default (3:
    a looped reduction's loads are pipelined)."""
    block_n = LOOP_BLOCK if looped else _pow2(cols)
    top = _pow2(rows)
    block_m = max(1, min(top, TILE // block_n))
    warps = 8 if block_n >= 8192 else 4
    out = [_config(4, 3, BLOCK_M=block_m, BLOCK_N=block_n),
           _config(warps * 2, 3, BLOCK_M=block_m, BLOCK_N=block_n),
           _config(4, 3, BLOCK_M=max(1, block_m // 2), BLOCK_N=block_n),
           _config(4, 3, BLOCK_M=min(top, block_m * 2), BLOCK_N=block_n)]
    if looped:
        out += [_config(8, 3, BLOCK_M=block_m, BLOCK_N=2 * LOOP_BLOCK),
                _config(4, 3, BLOCK_M=block_m, BLOCK_N=LOOP_BLOCK // 2)]
    return _distinct(out)


def _plan_contraction(k: Kernel, matmuls, axes) -> KernelPlan:
    if len(matmuls) > 1 or axes:
        raise NotImplementedError("a matmul fused with another matmul or a reduction")
    mm = matmuls[0]
    for r in mm.srcs:
        _prologue(k, mm, r)  # NOTE: raises where an operand cannot be computed per tile
    if len(k.domain) < 2 or mm.shape != k.domain:
        raise NotImplementedError("a matmul whose result is not the kernel's domain")
    m, n = k.contraction.m, k.contraction.n
    configs = _contraction_configs(mm.dtype, m, n, k.contraction.k)
    first = configs[0]
    return KernelPlan(KernelKind.CONTRACTION, (), m, n, False, first["BLOCK_M"],
                      first["BLOCK_N"], first["BLOCK_K"],
                      _contraction_grid(k, first), configs=configs)


def _contraction_grid(k: Kernel, config: dict) -> tuple[int, ...]:
    c = k.contraction
    return (-(-c.m // config["BLOCK_M"]) * -(-c.n // config["BLOCK_N"]), math.prod(c.batch))


def _contraction_configs(d: dt.DType, m: int, n: int, kk: int) -> tuple[dict, ...]:
    """Candidate tiles of a matmul, the heuristic's first, each capped at the problem's
    size. Tensor cores (float16, bfloat16) take 64x64 tiles and more; an exact float32 or
    float64 product (FMA, not TF32) holds 32x32 in registers without spilling; an
    integer one (a broadcast product summed over K, no `tl.dot`) a BLOCK_K of 8."""
    def tile(bm: int, bn: int, bk: int, warps: int = 4, stages: int = 3) -> dict:
        return _config(warps, stages, BLOCK_M=min(bm, max(16, _pow2(m))),
                       BLOCK_N=min(bn, max(16, _pow2(n))), BLOCK_K=min(bk, max(16, _pow2(kk))))
    if not d.is_floating_point:
        return _distinct([_config(4, 2, BLOCK_M=min(32, max(16, _pow2(m))),
                                  BLOCK_N=min(32, max(16, _pow2(n))), BLOCK_K=8),
                          _config(4, 2, BLOCK_M=16, BLOCK_N=16, BLOCK_K=16),
                          _config(8, 2, BLOCK_M=min(64, max(16, _pow2(m))),
                                  BLOCK_N=min(32, max(16, _pow2(n))), BLOCK_K=4)])
    if d in (dt.float32, dt.float64):
        return _distinct([tile(32, 32, 32), tile(64, 32, 32), tile(32, 64, 32),
                          tile(64, 64, 16, 8)])
    return _distinct([tile(64, 64, 32), tile(128, 128, 32, 8), tile(128, 64, 32, 4, 4),
                      tile(64, 128, 32, 4, 4), tile(128, 128, 64, 8, 3)])


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
    terms = [f"{idx[a]} * {strides[a]}" for a in axes if shape[a] != 1 and strides[a] != "0"]
    if terms and "cols" in zero:
        # NOTE: a 2-D block: an offset that moves along one of its axes only is
        # broadcast to both (the compiler folds the zeros away)
        terms.append(zero)
    return " + ".join(terms) if terms else zero


def kernel_source(k: Kernel, plan: KernelPlan, name: str | None = None,
                  nodes: tuple[int, ...] = ()) -> str:
    """The `@triton.jit` function of kernel k, written as `plan` says; `nodes`: the graph's
    number of each statement's node (the schedule's `%N`), named in the line's comment."""
    name = name or k.name
    args = kernel_args(k, plan)
    blocks = [f"{b}: tl.constexpr = {v}" for b, v in block_constexprs(plan).items()]
    w = _Writer()
    w(f"def {name}({', '.join(args + blocks)}):", 0)
    w(f'"""{plan.form} over {k.domain}: ' + "; ".join(
        f"s{s.id} {s.op.name}" for s in k.body) + '"""')
    form = {KernelKind.POINTWISE: _pointwise, KernelKind.REDUCTION: _reduction,
            KernelKind.CONTRACTION: _contraction}
    form[plan.form](k, plan, w)
    # NOTE: random numbers' seed and sequence words change every call: never
    # specialised on their values (Triton bakes an int argument of 1 into the kernel, and
    # a GPU launch reuses the kernel compiled at the first call)
    rand = [a for a in args if a.startswith("r")]
    jit = f"@triton.jit(do_not_specialize={rand!r})" if rand else "@triton.jit"
    return jit + "\n" + "\n".join(_commented(w.lines, k, nodes)) + "\n"


_ASSIGN = re.compile(r"^\s+s(\d+) = ")


def kernel_args(k: Kernel, plan: KernelPlan) -> list[str]:
    """The names of kernel k's arguments, in order: each load's pointer (and strides,
    unless it takes none), each output's pointer, each random parameter's words; then
    come its constexpr blocks (`block_constexprs`)."""
    args = []
    for j in range(len(k.loads)):
        args.append(f"in{j}")
        if j not in plan.no_strides():
            args.extend(f"in{j}_s{d}" for d in range(len(k.domain)))
    args += [f"out{j}" for j in range(len(k.stores))]
    return args + [f"r{j}_{w}" for j in _rand_params(k) for w in ("k0", "k1", "seq")]


def block_constexprs(plan: KernelPlan, config: dict | None = None) -> dict[str, int]:
    """The constexpr block sizes of a tuned kernel (a matmul's or a reduction's) under
    `config` (default: the heuristic's first candidate), in argument order; {} for one
    whose blocks are literals (pointwise)."""
    if not plan.configs:
        return {}
    config = config or plan.configs[0]
    return {name: v for name, v in config.items() if name.startswith("BLOCK_")}


def config_grid(k: Kernel, plan: KernelPlan, config: dict) -> tuple[int, ...]:
    """The grid of tuned kernel k launched with `config`'s blocks."""
    if plan.form is KernelKind.CONTRACTION:
        return _contraction_grid(k, config)
    return _reduction_grid(plan.rows, config)


def _commented(lines: list[str], k: Kernel, nodes: tuple[int, ...]) -> list[str]:
    """Each statement's line with a comment naming its IR op and node (`# MUL %12`)."""
    out = []
    for line in lines:
        m = _ASSIGN.match(line)
        if m:
            i = int(m.group(1))
            node = f" %{nodes[i]}" if i < len(nodes) else ""
            line = f"{line}  # {k.body[i].op.name}{node}"
        out.append(line)
    return out


def _strides(j: int, plan: KernelPlan, nd: int) -> list[str]:
    """Load j's strides: its View's (constants), else its stride arguments."""
    view = plan.views.get(j)
    if view is not None:
        return [str(x) for x in view.strides]
    return [f"in{j}_s{d}" for d in range(nd)]


def _ptr(j: int, plan: KernelPlan) -> str:
    """Load j's pointer: its base's, moved to its View's offset."""
    view = plan.views.get(j)
    return f"(in{j} + {view.offset})" if view is not None and view.offset else f"in{j}"


class _Body:
    """Writes a kernel's statements: each as `s{id}`, rounded where its dtype asks."""

    def __init__(self, k: Kernel, w: _Writer, load_expr, block_shape: str, depth: int = 1,
                 index_of=None):
        self.k, self.w, self.load_expr, self.shape, self.depth = k, w, load_expr, \
            block_shape, depth
        self.index_of = index_of  # shape -> the row-major index of the block's elements
        self.loaded: dict[int, str] = {}
        self.prefix = "x"  # of the loads' names

    def ref(self, r: Ref) -> str:
        if r.kind == "local":
            return f"s{r.index}"
        if r.kind == "const":
            shape = self.shape if isinstance(self.shape, str) else self.shape(r)
            return _literal(r.index, r.dtype, shape)
        if r.index not in self.loaded:
            name = f"{self.prefix}{r.index}"
            self.w(f"{name} = {self.load_expr(r.index)}", self.depth)
            if r.dtype in _ROUNDED:
                self.w(f"{name} = {name}.to(tl.float32)", self.depth)
            self.loaded[r.index] = name
        return self.loaded[r.index]

    def stmt(self, s: Stmt) -> None:
        if s.op is Op.RAND:
            self.rand(s)
            return
        rule = RULES.get(s.op)
        if rule is None:
            raise NotImplementedError(f"no Triton rule for {s.op.name}")
        expr = rule(s, *[self.ref(r) for r in s.srcs])
        self.assign(s, expr)

    def rand(self, s: Stmt) -> None:
        """RAND as runtime/philox.py's `uniform`: Philox of the element's index in the
        value, then the stream's words' top bits as a float in [0, 1) (exact in the
        value's dtype)."""
        _, j, stream = s.arg
        if math.prod(s.shape) >= 1 << 31:
            raise NotImplementedError("random numbers past 2**31 elements")
        words = [f"p{s.id}_{i}" for i in range(4)]
        self.w(f"{', '.join(words)} = _philox_at({self.index_of(s.shape)}, r{j}_k0, r{j}_k1, "
               f"r{j}_seq)", self.depth)
        hi, lo = words[2 * stream], words[2 * stream + 1]
        bits = _MANTISSA[s.dtype]
        if bits > 32:
            # NOTE: 53 bits: 32 of the first word, the top 21 of the second
            expr = (f"((({hi}.to(tl.uint64) << 21) | ({lo} >> 11).to(tl.uint64))"
                    f".to(tl.float64) * {2.0 ** -53!r})")
        else:
            expr = f"(({hi} >> {32 - bits}).to(tl.float32) * {2.0 ** -bits!r})"
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
    needs_index = any(j not in plan.flat for j in range(len(k.loads))) or any(
        s.op is Op.RAND and s.shape != k.domain for s in k.body) or any(
        k.body[sid].shape != k.domain for sid, _ in k.stores)
    idx = _index_names(k.domain, tuple(range(nd)), "offs", "i", w) if needs_index else {}

    def load(j: int) -> str:
        if j in plan.flat:
            return f"tl.load(in{j} + offs, mask=mask)"
        shape = _load_shape(k, j)
        off = _offset(shape, _strides(j, plan, nd), idx, range(nd), "offs * 0")
        return f"tl.load({_ptr(j, plan)} + {off}, mask=mask)"

    def index_of(shape) -> str:
        return "offs" if shape == k.domain else _offset(
            shape, [str(x) for x in _contiguous(shape)], idx, range(nd), "offs * 0")

    body = _Body(k, w, load, f"[{plan.block_m}]", index_of=index_of)
    for s in k.body:
        body.stmt(s)
    for j, (sid, _) in enumerate(k.stores):
        shape = k.body[sid].shape
        if shape == k.domain:
            w(f"tl.store(out{j} + offs, s{sid}, mask=mask)")
            continue
        # NOTE: a value broadcast over the domain (size 1 on some of its axes) is stored
        # once per element of its own: by the domain's elements at index 0 on those axes
        first = "".join(f" & ({idx[a]} == 0)" for a in range(nd)
                        if shape[a] == 1 and k.domain[a] != 1)
        w(f"tl.store(out{j} + {index_of(shape)}, s{sid}, mask=mask{first})")


def _rand_params(k: Kernel) -> list[int]:
    """The runtime parameters (seed, sequence number) k's RAND statements draw from."""
    return sorted({s.arg[1] for s in k.body if s.op is Op.RAND})


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
    bm, bn = "BLOCK_M", "BLOCK_N"  # NOTE: constexpr arguments: the autotuner's choice
    w(f"rows = tl.program_id(0) * {bm} + tl.arange(0, {bm})[:, None]")
    w(f"rmask = rows < {plan.rows}")
    ridx = _index_names(k.domain, kept, "rows", "r", w) if kept else {}

    def is_row(shape) -> bool:
        return all(shape[a] == 1 for a in axes)

    depth = 1
    after = k.epilogue
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
            return f"tl.load({_ptr(j, plan)} + {off}, mask=rmask)"
        off = _offset(shape, strides, idx, range(nd), "(rows + cols) * 0")
        return f"tl.load({_ptr(j, plan)} + {off}, mask=mask)"

    # NOTE: a constant of a row's shape is a column of the block: a value computed
    # from it and the row's reductions alone is stored as a row
    body = _Body(k, w, load, lambda r: f"[{bm}, 1]" if is_row(r.shape) else f"[{bm}, {bn}]",
                 depth, _index_of(idx, nd))
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


def _index_of(idx: dict, nd: int):
    """shape -> the row-major index, in a value of that shape, of a 2-D block's elements
    (the block's axes' index names: `idx`)."""
    def index_of(shape) -> str:
        return _offset(shape, [str(x) for x in _contiguous(shape)], idx, range(nd),
                       "(rows + cols) * 0")
    return index_of


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


def _prologue(k: Kernel, mm: Stmt, operand: Ref) -> list[Stmt]:
    """The statements that compute a matmul operand in the kernel (none for a load), in
    order: elementwise, of the operand's shape, from loads and constants, and read by
    nothing but each other and the matmul (they are computed per tile of the operand)."""
    if operand.kind != "local":
        return []  # a load, or a constant
    need, stack = set(), [operand.index]
    while stack:
        i = stack.pop()
        if i not in need:
            need.add(i)
            stack.extend(r.index for r in k.body[i].srcs if r.kind == "local")
    chain = [st for st in k.body if st.id in need]
    stored = {sid for sid, _ in k.stores}
    for st in chain:
        if st.op in FORM_OPS or st.id in stored or any(
                len(x) != len(operand.shape) or any(a not in (1, b) for a, b in
                                                    zip(x, operand.shape))
                for x in [st.shape] + [r.shape for r in st.srcs if r.kind != "const"]):
            raise NotImplementedError("a matmul operand computed by other than elementwise "
                                      "work of its own shape")
    for st in k.body:
        if st.id not in need and st is not mm and any(
                r.kind == "local" and r.index in need for r in st.srcs):
            raise NotImplementedError("a matmul operand computed in the kernel and read "
                                      "by its epilogue too")
    return chain


def _operand_tile(k: Kernel, plan: KernelPlan, w: _Writer, mm: Stmt, side: int,
                  bidx: dict) -> str:
    """Write the loop's lines that make the tile of matmul operand `side` (0: A, 1: B):
    a load, or its prologue's statements over loads of the tile; the tile's name."""
    nd = len(k.domain)
    ref = mm.srcs[side]
    kk = mm.srcs[0].shape[-1]
    if side == 0:
        idx = {**bidx, nd - 2: "rows", nd - 1: "kk[None, :]"}
        zero, mask = "(rows + kk[None, :]) * 0", f"rmask & (kk[None, :] < {kk})"
        block = "[BLOCK_M, BLOCK_K]"
    else:
        idx = {**bidx, nd - 2: "kk[:, None]", nd - 1: "cols"}
        zero, mask = "(kk[:, None] + cols) * 0", f"(kk[:, None] < {kk}) & cmask"
        block = "[BLOCK_K, BLOCK_N]"
    name = "ta" if side == 0 else "tb"

    def load(j: int) -> str:
        shape = _load_shape(k, j)
        off = _offset(shape, _strides(j, plan, nd), idx, range(nd))
        return f"tl.load({_ptr(j, plan)} + {off} + {zero}, mask={mask}, other=0)"

    if ref.kind == "load":
        w(f"{name} = {load(ref.index)}", 2)
        return name
    if ref.kind == "const":  # a backward's cotangent of ones, say
        w(f"{name} = tl.where({mask}, {_literal(ref.index, ref.dtype, block)}, 0)", 2)
        return name
    body = _Body(k, w, load, block, 2)
    body.prefix = f"p{name}"
    for st in _prologue(k, mm, ref):
        body.stmt(st)
    # NOTE: the tile's elements past the ends are zeros, whatever the prologue made of
    # the loads' zeros there (log(0) * 0 is NaN)
    w(f"{name} = tl.where({mask}, s{ref.index}, 0)", 2)
    return name


# the dtype an integer matmul sums in: its own (wrapping as NumPy's), int32 for narrower
# ones (the same bits once cast back), and a count of true products for bool
_INT_ACC = {dt.int64: "tl.int64", dt.int32: "tl.int32", dt.int16: "tl.int32",
            dt.int8: "tl.int32", dt.uint8: "tl.int32", dt.bool_: "tl.int32"}


def _contraction(k: Kernel, plan: KernelPlan, w: _Writer) -> None:
    nd = len(k.domain)
    mm = next(s for s in k.body if s.op is Op.MATMUL)
    a, b = mm.srcs
    kk = a.shape[-1]
    bm, bn, bk = "BLOCK_M", "BLOCK_N", "BLOCK_K"  # NOTE: constexprs: the autotuner's
    m, n = k.domain[-2], k.domain[-1]
    w("pid = tl.program_id(0)")
    w(f"grid_m = ({m} + {bm} - 1) // {bm}")
    w(f"grid_n = ({n} + {bn} - 1) // {bn}")
    w("group = pid // (8 * grid_n)")
    w("first_m = group * 8")
    w("size_m = tl.minimum(grid_m - first_m, 8)")
    w("pid_m = first_m + (pid % size_m)")
    w("pid_n = (pid % (8 * grid_n)) // size_m")
    w("batch = tl.program_id(1)")
    bidx = _index_names(k.domain, tuple(range(nd - 2)), "batch", "b", w) if nd > 2 else {}
    w(f"rows = pid_m * {bm} + tl.arange(0, {bm})[:, None]")
    w(f"cols = pid_n * {bn} + tl.arange(0, {bn})[None, :]")
    w(f"rmask = rows < {m}")
    w(f"cmask = cols < {n}")
    w("mask = rmask & cmask")
    w(f"ks = tl.arange(0, {bk})")
    exact = not mm.dtype.is_floating_point
    acc = _INT_ACC.get(mm.dtype, "tl.int64") if exact else \
        "tl.float64" if a.dtype is dt.float64 else "tl.float32"
    w(f"acc = tl.zeros([{bm}, {bn}], {acc})")
    w(f"for k0 in range(0, {kk}, {bk}):")
    w("kk = k0 + ks", 2)
    _operand_tile(k, plan, w, mm, 0, bidx)
    _operand_tile(k, plan, w, mm, 1, bidx)
    if exact:
        # NOTE: tl.dot has no int64 (nor exact wide integer) form: the products of a K
        # block, broadcast to [BLOCK_M, BLOCK_K, BLOCK_N], summed over K; integers wrap
        # as NumPy's matmul in the result's dtype, whatever the order of the sums
        w(f"acc += tl.sum(ta.to({acc})[:, :, None] * tb.to({acc})[None, :, :], axis=1)", 2)
    else:
        precision = ', input_precision="ieee"' if a.dtype is dt.float32 else ""
        if a.dtype in _ROUNDED:
            w(f"ta = ta.to({_ROUNDED[a.dtype]})", 2)
            w(f"tb = tb.to({_ROUNDED[b.dtype]})", 2)
        w(f"acc = tl.dot(ta, tb, acc{precision})", 2)
    idx = {**bidx, nd - 2: "rows", nd - 1: "cols"}

    def load(j: int) -> str:
        shape = _load_shape(k, j)
        off = _offset(shape, _strides(j, plan, nd), idx, range(nd), "(rows + cols) * 0")
        return f"tl.load({_ptr(j, plan)} + {off}, mask=mask)"

    body = _Body(k, w, load, f"[{bm}, {bn}]", index_of=_index_of(idx, nd))
    stores = {sid: j for j, (sid, _) in enumerate(k.stores)}
    tiles = {st.id for r in mm.srcs for st in _prologue(k, mm, r)}
    for s in k.body:
        if s.id in tiles:
            continue  # NOTE: computed per tile of its operand, in the loop
        if s is mm:
            body.assign(s, "acc" if s.dtype in _ROUNDED or s.dtype in (dt.float32, dt.float64)
                        else "(acc != 0)" if s.dtype is dt.bool_ else f"acc.to({_TL[s.dtype]})")
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
    (`Launch` copies one that is not contiguous after all)."""
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
from ember.runtime.autotune import Tuned
from ember.runtime.compiled import _bf16, _extern, _strided_at, _Stub, _write, _write_into
from ember.runtime.triton_launch import Launch, _host_kernel_of, _input, _rand_args
from ember.runtime.triton_launch import _device_value, _dview, _empty, _host
from ember.runtime.triton_launch import libdevice as _libdevice

libdevice = _libdevice()

_PHILOX_M0 = tl.constexpr(0xD2511F53)
_PHILOX_M1 = tl.constexpr(0xCD9E8D57)
_PHILOX_W0 = tl.constexpr(0x9E3779B9)
_PHILOX_W1 = tl.constexpr(0xBB67AE85)
_INF = tl.constexpr(float("inf"))
_NINF = tl.constexpr(float("-inf"))
_NAN = tl.constexpr(float("nan"))
'''


def emit(prog: Program, nodes: dict[str, tuple[int, ...]] | None = None,
         device: bool = False) -> tuple[str, list[str]]:
    """(module source, notes): Triton kernels and the `program(inputs, params)` that
    runs the steps; a note names each kernel run on the host and why. `nodes`: each
    kernel's statements' graph node numbers, by kernel name (for the source's comments).

    `device`: the program's values are device tensors (the "cuda" device's memory):
    it allocates there, takes views with torch's view methods, and runs host steps on
    copies in host memory (`_host`, `_device_value`); otherwise they are NumPy arrays."""
    parts = [HEADER, _HELPERS]
    body: list[str] = []
    stubs: list[str] = []
    notes: list[str] = []
    vals = {v.id: v for v in prog.values}
    # NOTE: host steps are the NumPy generator's, with its context (parameters as arrays)
    host = StepContext(prog, scalars=False)
    for pos, v in prog.inputs:
        # NOTE: an input is its buffer's flat array
        body.append(f"v{v} = _input(inputs[{pos}], {tuple(vals[v].shape)!r})")
    written = _written(prog, nodes)
    needed = _needed(prog, written)
    for step in prog.steps:
        if step.kind == "kernel":
            k = step.kernel
            plan, src = written[k.name]
            if plan is None:
                e = src
                notes.append(f"{k.name} runs on the host: {e}")
                name = f"_h{len(stubs)}"
                stubs.append(f"{name} = _host_kernel_of({_kernel_literal(k)})")
                loads = ", ".join((f"_host(v{v})" if device else f"v{v}") for v in k.loads)
                outs = ", ".join(f"v{v}" for _, v in k.stores)
                body.append(f"{outs}, = {name}([{loads}], params)")
                if device:
                    body.extend(f"v{v} = _device_value(v{v})" for _, v in k.stores)
                continue
            parts.append(src)
            outs = [(sid, v) for sid, v in k.stores]
            for _, v in outs:
                val = vals[v]
                alloc = "_empty" if device else "np.empty"
                body.append(f"v{v} = {alloc}({tuple(val.shape)!r}, {_np_storage(val.dtype)})")
            loads = ", ".join(f"v{_read(plan, k, j)}" for j in range(len(k.loads)))
            flat = sorted(plan.no_strides())
            stores = ", ".join(f"v{v}" for _, v in outs)
            rand = "".join(f"*_rand_args(params[{j}]), " for j in _rand_params(k))
            # NOTE: the grid and launch arguments are fixed when the module is loaded
            stubs.append(f"_launch_{k.name} = Launch({_launched(k, plan)}, {plan.grid!r}, "
                         f"{flat!r}" + (", device=True)" if device else ")"))
            body.append(f"_launch_{k.name}([{loads}], [{stores}]"
                        + (f", ({rand})" if rand else "") + ")")
        elif step.kind == "view":
            if step.out not in needed:
                continue  # NOTE: read by kernels through their composed Views only
            if device:
                body.append(f"v{step.out} = _dview(Op.{step.op.name}, {arg_src(step.arg)}, "
                            f"v{step.srcs[0]})")
                continue
            # NOTE: host steps are the NumPy generator's, one rule table for both
            body.append(f"v{step.out} = " + NP_RULES[step.op].view(f"v{step.srcs[0]}",
                                                                   step.arg))
        else:
            line = NP_RULES[step.op].step(step, vals[step.out], stubs, host)
            body.append(_on_host(line, step.srcs) if device else line)
    body.append("return [" + ", ".join(f"v{o}" for o in prog.outputs) + "]")
    parts.extend(s + "\n" for s in stubs)
    parts.append("\ndef program(inputs, params):\n" + "".join(f"    {ln}\n" for ln in body))
    return "\n\n".join(p.strip("\n") + "\n" for p in parts), notes


def _on_host(line: str, srcs) -> str:
    """A host step's line `vN = expr` over device values: its operands copied to host
    memory, its result back to the device."""
    out, expr = line.split(" = ", 1)
    srcs = {f"v{x}" for x in srcs}
    expr = re.sub(r"\bv\d+\b", lambda m: f"_host({m[0]})" if m[0] in srcs else m[0], expr)
    return f"{out} = _device_value({expr})"


def _written(prog: Program, nodes: dict | None = None) -> dict:
    """{kernel name: (plan, source)}, or (None, why not) for a kernel left to the host;
    `nodes`: each kernel's graph node numbers, for the source's comments."""
    out = {}
    for step in prog.steps:
        if step.kind == "kernel":
            k = step.kernel
            try:
                plan = plan_kernel(k, _fresh_contiguous(prog, k))
                src = kernel_source(k, plan, nodes=(nodes or {}).get(k.name, ()))
                out[k.name] = (plan, src + _tuned(k, plan, src))
            except NotImplementedError as e:
                out[k.name] = (None, e)
    return out


def _launched(k: Kernel, plan: KernelPlan) -> str:
    """What kernel k's `Launch` calls: the kernel, or its `Tuned` wrapper."""
    return f"_tuned_{k.name}" if plan.configs else k.name


def _tuned(k: Kernel, plan: KernelPlan, src: str) -> str:
    """The module line that wraps tuned kernel k (source `src`) for runtime/autotune.py:
    its candidates, the grid of each, its outputs' argument positions and a digest of
    its source and candidates (the stored choice's key); "" for an untuned kernel."""
    if not plan.configs:
        return ""
    grids = [config_grid(k, plan, c) for c in plan.configs]
    args = kernel_args(k, plan)
    outputs = tuple(args.index(f"out{j}") for j in range(len(k.stores)))
    key = hashlib.sha256(f"{src}\n{plan.configs!r}\n{grids!r}".encode()).hexdigest()[:32]
    return (f"\n\n_tuned_{k.name} = Tuned({k.name}, {list(plan.configs)!r}, {grids!r}, "
            f"{outputs!r}, {key!r})\n")


def _read(plan: KernelPlan, k: Kernel, j: int) -> int:
    """The value kernel k's load j is handed: its View's base, or the value itself."""
    return k.views[j][0] if j in plan.views else k.loads[j]


def _needed(prog: Program, written: dict) -> set[int]:
    """The values the host must make: outputs, what host steps read, and what kernels are
    handed (a view step whose value kernels read through composed Views is skipped)."""
    needed = set(prog.outputs)
    for step in prog.steps:
        if step.kind == "kernel":
            k = step.kernel
            plan = written[k.name][0]
            needed |= set(k.loads) if plan is None else {
                _read(plan, k, j) for j in range(len(k.loads))}
        elif step.kind != "view":
            needed |= set(step.srcs)
    for step in reversed(prog.steps):
        if step.kind == "view" and step.out in needed:
            needed.add(step.srcs[0])
    return needed


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
    `ASTSource` signature): each operand's pointer, then its strides (32-bit ints); then
    each random parameter's Philox key and sequence words (`_rand_args`: 32-bit ints);
    then a tuned kernel's constexpr blocks (their values: `block_constexprs`)."""
    vals = {v.id: v for v in prog.values}
    sig = {}
    for j, v in enumerate(k.loads):
        sig[f"in{j}"] = _POINTER[vals[v].dtype]
        if j not in plan.no_strides():
            sig.update({f"in{j}_s{d}": "i32" for d in range(len(k.domain))})
    for j, (_, v) in enumerate(k.stores):
        sig[f"out{j}"] = _POINTER[vals[v].dtype]
    for j in _rand_params(k):
        sig.update({f"r{j}_{w}": "i32" for w in ("k0", "k1", "seq")})
    sig.update({name: "constexpr" for name in block_constexprs(plan)})
    return sig


def _np_storage(d: dt.DType) -> str:
    return f"np.dtype({d.np.name!r})" if d is not dt.bool_ else "np.bool_"


def _kernel_literal(k: Kernel) -> str:
    """Source that rebuilds kernel k (for the host fallback)."""
    def ref(r: Ref) -> str:
        index = repr(r.index)
        if index in ("inf", "-inf", "nan") or "(inf)" in index or "(nan)" in index:
            index = f"float('{float(r.index)}')"  # NOTE: no name inf or nan there
        return (f"Ref(RefKind.{RefKind(r.kind).name}, {index}, {dtype_ref(r.dtype)}, "
                f"{tuple(r.shape)!r})")

    stmts = ", ".join(
        f"Stmt({s.id}, Op.{s.op.name}, ({''.join(ref(r) + ', ' for r in s.srcs)}), "
        f"{arg_src(s.arg) if s.arg is not None else None}, {dtype_ref(s.dtype)}, "
        f"{tuple(s.shape)!r})" for s in k.body)
    return (f"Kernel({k.name!r}, {tuple(k.domain)!r}, {k.tile_axis!r}, {tuple(k.loads)!r}, "
            f"({stmts},), {tuple(k.stores)!r})")
