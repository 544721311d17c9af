"""The program generator: seeded, and checked line by line against torch as it goes.

`generate(seed, gaps)` draws 5-15 statements over ember's op set. Each candidate line
is run in torch at once; a line torch rejects is dropped and another drawn, except
now and then (`P_ERROR`) when it is kept as a line ember must reject too. Running
torch live lets every later line see the true shapes, dtypes and grad state.

`gaps` (see `KNOWN_GAPS` in runner.py) names known-bug categories the generator
leaves out; each `_gap(...)` check below says which pattern a category turns off.
"""

from __future__ import annotations

import math
import random
import re

import numpy as np

from .program import Program, Stmt, exec_stmt, namespace

P_ERROR = 0.12
KEPT_ERRORS = ("view", "inplace", "index", "op", "backward", "reduce")  # kinds kept raising
# torch's own limitations: a line torch rejects with one of these is dropped, never kept
# as a line ember must reject (ember may support it)
TORCH_LIMITS = re.compile(
    r"not implemented for|derivative for .* is not implemented|Boolean inputs not supported"
    r"|is a view and its base or another view of its base has been modified inplace"
    r"|does not support automatic differentiation|only supports floating"
    r"|does not support bool input|is the output of a function that returns multiple views"
    r"|Index put requires the source and destination dtypes match"
    r"|with a bool tensor is not supported")
SHAPES = [(), (1,), (3,), (4,), (2, 3), (3, 2), (1, 3), (3, 1), (2, 1, 3), (2, 3, 4), (4, 4),
          (2, 2, 2), (2, 4)]
FLOAT_DTYPES = ["float32"] * 6 + ["float64"] * 2 + ["float16"]
ALL_DTYPES = FLOAT_DTYPES + ["int64", "int64", "int32", "bool"]

UNARY_FLOAT = ["neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu",
               "square", "reciprocal", "sign", "floor", "ceil", "round", "trunc", "expm1",
               "log1p", "rsqrt", "exp2", "log2", "log10"]
# NOTE: no tan: tan(tan(x)) near a pole turns float32 rounding into 1e-3 differences
UNARY_ANY = ["abs", "neg", "sign", "isnan", "isfinite", "logical_not", "square", "relu"]
BINARY = ["+", "-", "*", "/", "**", "//", "%", "maximum", "minimum", "==", "<", ">=", "!=",
          "logical_and", "logical_or", "&", "|", "^"]
REDUCE = ["sum", "mean", "amax", "amin", "prod", "var", "std", "norm", "logsumexp",
          "softmax", "log_softmax", "argmax", "argmin", "all", "any", "cumsum", "nansum",
          "max", "min", "count_nonzero", "nanmean", "median"]
INPLACE_UNARY = ["neg_", "abs_", "exp_", "sqrt_", "relu_", "sigmoid_", "zero_", "tanh_",
                 "floor_", "sin_"]


def _fmt_num(x) -> str:
    if isinstance(x, bool):
        return repr(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "math.nan"
        if math.isinf(x):
            return "math.inf" if x > 0 else "-math.inf"
    return repr(x)


def _lit(a: np.ndarray) -> str:
    """A nested Python list literal for a NumPy array."""
    if a.ndim == 0:
        return _fmt_num(a.item())
    return "[" + ", ".join(_lit(x) for x in a) + "]"


class Gen:
    """Draws one program, running each candidate line in torch."""

    def __init__(self, seed: int, gaps=frozenset()):
        import torch
        self.torch = torch
        self.rng = random.Random(seed)
        self.gaps = set(gaps)
        self.ns = namespace(torch)
        self.stmts: list[Stmt] = []
        self.n = 0
        self.specials = self.rng.random() < 0.3     # NaN/inf/-0 in this program's data
        self.backward_failed = False
        self.was_read: set = set()    # storages whose values a line has read
        self.exact: set = set()       # names holding data as written (no rounding yet)

    # -- helpers ---------------------------------------------------------------
    def _gap(self, name: str) -> bool:
        return name in self.gaps

    def name(self, letter="v") -> str:
        self.n += 1
        return f"{letter}{self.n}"

    def tensors(self, pred=lambda t: True) -> list[str]:
        T = self.torch.Tensor
        return [k for k, v in self.ns.items() if isinstance(v, T) and _safe(pred, v)]

    def arrays(self) -> list[str]:
        return [k for k, v in self.ns.items() if isinstance(v, np.ndarray) and v.size
                and v.flags.writeable]

    def pick(self, pred=lambda t: True):
        names = self.tensors(pred)
        return self.rng.choice(names) if names else None

    def values(self, shape, dtype: str, rg: bool = False) -> np.ndarray:
        r = self.rng
        specials = self.specials and not (rg and self._gap("nan_grad"))
        n = math.prod(shape)
        if dtype == "bool":
            vals = [r.random() < 0.5 for _ in range(n)]
            return np.array(vals, dtype=bool).reshape(shape)
        if dtype.startswith("int") or dtype == "uint8":
            return np.array([r.randint(-4, 5) for _ in range(n)], dtype=np.int64).reshape(shape)
        pool = [-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 0.25]
        special = [math.nan, math.inf, -math.inf, 0.0, -0.0]
        if self._gap("signed_zero"):
            special = special[:-1]
        vals = [r.choice(special) if specials and r.random() < 0.15 else r.choice(pool)
                for _ in range(n)]
        return np.array(vals, dtype=np.float64).reshape(shape)

    def bounds(self) -> tuple:
        """Clamp bounds; off the data's values when ties at a bound are a known gap."""
        pool = ([-0.7071, 0.3333, 1.2345, 2.2222] if self._gap("clamp_ties")
                else [-1.0, 0.0, 0.5, 1.0, 2.0])
        return tuple(sorted(self.rng.sample(pool, 2)))

    def scalar(self, kind="any"):
        r = self.rng
        if kind == "int" or (kind == "any" and r.random() < 0.4):
            return r.choice([0, 1, 2, 3, -1, -2])
        specials = self.specials and not self._gap("nan_grad")
        return r.choice([0.5, 2.0, -1.5, 1.0, 0.0, 3.0, -0.25]) if not (
            specials and r.random() < 0.1) else r.choice([math.inf, math.nan])

    def shape_like(self, shape) -> tuple:
        """A shape that broadcasts with `shape`."""
        r = self.rng
        s = list(shape)
        s = [1 if r.random() < 0.3 else d for d in s]
        if s and r.random() < 0.3:
            s = s[r.randint(0, len(s)):]
        if r.random() < 0.1:
            s = [2] + s
        return tuple(s)

    # -- statements ------------------------------------------------------------
    def data(self, shape=None, dtype=None, rg=None) -> Stmt:
        r = self.rng
        shape = shape if shape is not None else r.choice(SHAPES)
        dtype = dtype or r.choice(ALL_DTYPES)
        name = self.name()
        floating = dtype.startswith("float") or dtype == "bfloat16"
        if rg is None:
            rg = floating and r.random() < 0.5 and dtype != "float16"
        if self._gap("nan_grad") and self.specials:
            rg = False      # NaN/inf data: torch's NaN gradients are a known gap
        rgs = ", requires_grad=True" if rg else ""
        choice = r.random()
        if choice < 0.12 and not rg:
            maker = r.choice(["zeros", "ones"])
            return Stmt(f"{name} = M.{maker}({shape}, dtype=M.{dtype})", (name,), (), "data")
        if choice < 0.2 and not rg and dtype != "bool" and math.prod(shape) > 0:
            n = math.prod(shape)
            return Stmt(f"{name} = M.arange({n}, dtype=M.{dtype}).reshape({shape})",
                        (name,), (), "data")
        if choice < 0.35 and not rg and dtype not in ("bfloat16",):
            a = self.name("a")
            np_dtype = "bool_" if dtype == "bool" else dtype
            arr = Stmt(f"{a} = np.array({_lit(self.values(shape, dtype))}, dtype=np.{np_dtype})",
                       (a,), (), "data")
            fn = r.choice(["from_numpy", "from_numpy", "as_tensor", "tensor"])
            if fn == "as_tensor" and self._gap("as_tensor_copies"):
                fn = "from_numpy"
            return [arr, Stmt(f"{name} = M.{fn}({a})", (name,), (a,), "data")]
        lit = _lit(self.values(shape, dtype, rg))
        return Stmt(f"{name} = M.tensor({lit}, dtype=M.{dtype}{rgs})", (name,), (), "data")

    def unary(self):
        r = self.rng
        x = self.pick()
        if x is None:
            return None
        t = self.ns[x]
        out = self.name()
        if t.is_floating_point() and r.random() < 0.7:
            op = r.choice(UNARY_FLOAT)
        elif r.random() < 0.3:
            cast = r.choice([".float()", ".double()", ".long()", ".int()", ".bool()", ".half()",
                             ".to(M.float64)", ".to(M.int32)", ".float().clone()"])
            return Stmt(f"{out} = {x}{cast}", (out,), (x,), "op")
        else:
            op = r.choice(UNARY_ANY)
        if self._gap("sigmoid_at_zero") and op == "sigmoid":
            op = "tanh"
        if self._gap("signed_zero") and op == "rsqrt":
            op = "sqrt"
        if self._gap("exp2_inexact") and op == "exp2":
            op = "exp"
        if op in ("sin", "cos") and not self.moderate(t):
            op = "tanh"
        if self._gap("median") and op == "median":
            return None
        form = f"{x}.{op}()" if r.random() < 0.6 else f"M.{op}({x})"
        if op == "clamp":
            form = f"{x}.clamp(min=-1.0, max=1.5)"
        if r.random() < 0.15 and t.is_floating_point() and not (
                self._gap("nan_grad") and not self.finite(t)):
            lo, hi = self.bounds()
            form = r.choice([f"{x}.clamp({lo}, {hi})", f"{x}.clamp(min={lo})",
                             f"M.clamp({x}, max={hi})", f"M.nan_to_num({x})",
                             f"M.where({x} > 0, {x}, {x} * 0.1)"])
        return Stmt(f"{out} = {form}", (out,), (x,), "op")

    def binary(self):
        r = self.rng
        x = self.pick()
        if x is None:
            return None
        tx = self.ns[x]
        op = r.choice(BINARY)
        out = self.name()
        pre = []
        if r.random() < 0.35:
            y = _fmt_num(self.scalar())
            uses = (x,)
        else:
            cands = self.tensors(lambda t: _broadcasts(t.shape, tx.shape))
            cands = [c for c in cands if c != x] or cands
            if cands and r.random() < 0.7:
                y = r.choice(cands)
            else:
                dt = r.choice(ALL_DTYPES) if r.random() < 0.3 else _dtype(tx)
                st = self.data(self.shape_like(tx.shape), dt)
                pre = st if isinstance(st, list) else [st]
                y = pre[-1].defines[0]
            uses = (x, y)
        if r.random() < 0.3:
            x, y = y, x
        if op in ("==", "<", ">=", "!=") and not all(self.is_exact(n) or not self.is_low(n)
                                                  for n in (x, y) if _is_name(n)):
            op = "-"    # NOTE: float16 results of ops may round either way at a comparison
        def integral(n):
            if _is_name(n) and n not in self.ns:     # drawn just now in `pre`
                return not re.search(r"float|half", pre[-1].code)
            return _is_int(self.ns.get(n, n))

        if op in ("//", "%") and self._gap("signed_zero") and not (integral(x) and integral(y)):
            op = "*"
        if op == "**" and self._gap("pow_kinks") and _is_name(y) and not (
                _is_name(x) and x in self.ns and bool((self.ns[x] != 0).all())):
            op = "*"    # a tensor exponent of a base that may hold 0
        if op in ("maximum", "minimum", "logical_and", "logical_or"):
            if not _is_name(x):
                x, y = y, x
            expr = f"M.{op}({x}, {y})" if _is_name(y) else f"{x} * {y}"
        else:
            expr = f"{x} {op} {y}"
        return pre + [Stmt(f"{out} = {expr}", (out,), uses, "op")]

    def where(self):
        c = self.pick(lambda t: t.dtype == self.torch.bool)
        x = self.pick(lambda t: t.is_floating_point())
        if c is None or x is None:
            return None
        out = self.name()
        other = self.rng.choice([_fmt_num(self.scalar("float")), x + " * 2"])
        return Stmt(f"{out} = M.where({c}, {x}, {other})", (out,), (c, x), "op")

    def view(self):
        r = self.rng
        x = self.pick()
        if x is None:
            return None
        t = self.ns[x]
        s, nd = tuple(t.shape), t.dim()
        out = self.name()
        opts = []
        n = t.numel()
        opts.append(f"{x}.view(-1)")
        opts.append(f"{x}.reshape({_factor(n, r)})")
        opts.append(f"{x}.view({_factor(n, r)})")
        opts.append(f"{x}.flatten()")
        opts.append(f"{x}.unsqueeze({r.randint(-nd - 1, nd)})")
        opts.append(f"{x}.detach()")
        if nd:
            p = list(range(nd))
            r.shuffle(p)
            d = r.randrange(nd)
            d2 = r.randrange(nd)
            opts += [f"{x}.permute({', '.join(map(str, p))})",
                     f"{x}.transpose({d}, {d2})", f"{x}.squeeze()", f"{x}.squeeze({d})",
                     f"{x}.select({d}, {r.randint(-s[d], max(s[d] - 1, 0))})",
                     f"{x}.narrow({d}, {r.randint(0, s[d])}, {r.randint(0, s[d])})",
                     f"{x}[::{r.choice([2, 3])}]", f"{x}[1:]", f"{x}[..., {r.randint(-1, 1)}]",
                     f"{x}[None, ::2]", f"{x}.movedim({d}, {d2})",
                     f"{x}.split(1, {d})[0]", f"{x}.unbind({d})[-1]",
                     f"{x}.chunk(2, {d})[-1]", f"{x}.flatten({d})"]
            ex = [2 if dim == 1 and r.random() < 0.7 else dim for dim in s]
            if r.random() < 0.3:
                ex = [2] + ex
            opts.append(f"{x}.expand({', '.join(map(str, ex))})")
            opts.append(f"{x}.expand({', '.join(['-1'] * nd)})")
        if nd <= 2:
            opts.append(f"{x}.t()")
        if nd == 2:
            opts += [f"{x}.T", f"{x}[:, 1:3]", f"{x}[:, ::2]",
                     f"{x}.diagonal()", f"{x}[1:, ::2]"]
        if nd >= 2:
            opts.append(f"{x}.mT")
            opts.append(f"{x}.unflatten(-1, (1, {s[-1]}))")
        expr = r.choice(opts)
        if self.whole_slice(t, expr) or self.empty_view(expr):
            return None
        if x in self.exact:
            self.exact.add(out)
        return Stmt(f"{out} = {expr}", (out,), (x,), "view")

    def index_read(self):
        r = self.rng
        x = self.pick(lambda t: t.dim() > 0)
        if x is None:
            return None
        t = self.ns[x]
        out = self.name()
        idx = self.index_expr(t, x)
        if idx is None:
            return None
        expr, uses = idx
        if r.random() < 0.15 and t.dim() >= 1:
            ii = [r.randrange(t.shape[-1] or 1) for _ in range(3)]
            expr = r.choice([f"{x}.index_select(-1, M.tensor({ii}))",
                             f"M.gather({x}, {t.dim() - 1}, M.zeros_like({x}, "
                             f"dtype=M.int64))"])
            return Stmt(f"{out} = {expr}", (out,), (x,), "index")
        if self.whole_slice(t, f"{x}[{expr}]") or self.empty_view(f"{x}[{expr}]"):
            return None
        return Stmt(f"{out} = {x}[{expr}]", (out,), (x,) + uses, "index")

    def index_expr(self, t, x):
        """An index for `t` (a tensor named x) and the names it uses."""
        r = self.rng
        s = t.shape
        c = r.random()
        if c < 0.25:
            return str(r.randint(-s[0], max(s[0] - 1, 0))), ()
        if c < 0.4:
            return f"{r.randint(0, 1)}:{r.choice(['', str(s[0])])}:{r.choice([1, 2])}", ()
        if c < 0.55:
            masks = self.tensors(lambda m: m.dtype == self.torch.bool and m.shape == s)
            if masks:
                m = r.choice(masks)
                self.was_read.add(self.ns[m].untyped_storage().data_ptr())
                return m, (m,)
            return f"{x} > 0" if t.dtype != self.torch.bool else x, ()
        if c < 0.7:
            ii = [r.randint(-s[0], max(s[0] - 1, 0)) for _ in range(r.randint(1, 3))]
            return f"M.tensor({ii})", ()
        if c < 0.8 and t.dim() >= 2:
            return f"..., {r.randint(0, s[-1] - 1) if s[-1] else 0}", ()
        if t.dim() >= 2:
            return f"{r.randint(0, max(s[0] - 1, 0))}, {r.choice(['1:', '::2', '-1', ':'])}", ()
        return ":", ()

    def inplace(self):
        r = self.rng
        x = self.pick()
        if x is None:
            return None
        t = self.ns[x]
        if self._gap("numpy_inplace") and self.shares_numpy(t):
            return None
        if self._gap("detach_view_inplace") and not t.requires_grad and self.shares_with_grad(t):
            return None
        if self._gap("setitem_broadcast") and any(
                st == 0 and n > 1 for st, n in zip(t.stride(), t.shape)):
            return None     # an expanded target
        if self._gap("read_then_inplace") and t.untyped_storage().data_ptr() in self.was_read:
            return None
        # an argument that requires grad, written into a view, loses its gradient
        rg_ok = not (self._gap("grad_through_view_write") and self.has_views(x))
        if self._gap("copy_requires_grad") and (not t.is_floating_point() or t.numel() == 0):
            rg_ok = False
        c = r.random()
        if self._gap("overwritten_grad_nan") and t.requires_grad and c >= 0.55:
            return None     # copy_, fill_, setitem: torch's gradient of what they overwrite
        if c < 0.3:
            op = r.choice(["add_", "sub_", "mul_", "div_"])
            if r.random() < 0.5:
                arg = _fmt_num(self.scalar())
                uses = (x,)
            else:
                cands = self.tensors(lambda u: _broadcasts(u.shape, t.shape) and (
                    rg_ok or not u.requires_grad) and not _overlaps(u, t))
                if not cands:
                    return None
                arg = r.choice(cands)
                uses = (x, arg)
            code = f"{x}.{op}({arg})"
        elif c < 0.45:
            op = r.choice(INPLACE_UNARY)
            if op == "sigmoid_" and self._gap("sigmoid_at_zero"):
                op = "tanh_"
            if op == "sin_" and not self.moderate(t):
                op = "tanh_"
            if op == "zero_" and self._gap("overwritten_grad_nan") and t.requires_grad:
                op = "neg_"
            code, uses = f"{x}.{op}()", (x,)
        elif c < 0.55:
            if self._gap("nan_grad") and not self.finite(t):
                return None
            lo, hi = self.bounds()
            code, uses = f"{x}.clamp_({lo}, {hi})", (x,)
        elif c < 0.65:
            cands = self.tensors(lambda u: _broadcasts(u.shape, t.shape) and not _overlaps(u, t)
                                 and (rg_ok or not u.requires_grad))
            if not cands:
                return None
            y = r.choice(cands)
            code, uses = f"{x}.copy_({y})", (x, y)
        elif c < 0.72:
            code, uses = f"{x}.fill_({_fmt_num(self.scalar())})", (x,)
        elif c < 0.77:
            code, uses = f"{x} += {_fmt_num(self.scalar())}", (x,)
        else:
            if t.dim() == 0:
                code, uses = f"{x}[...] = {_fmt_num(self.scalar())}", (x,)
            else:
                idx = self.index_expr(t, x)
                if idx is None:
                    return None
                expr, iu = idx
                if r.random() < 0.5:
                    val, vu = _fmt_num(self.scalar()), ()
                else:
                    region = eval(f"{x}[{expr}]", self.ns).dim() if self._gap(  # noqa: S307
                        "setitem_broadcast") else 9
                    # NOTE: torch's `b[i] = w` into an integer b takes fill_ or masked_fill_
                    # for a one-element w, which (a torch bug) marks b as requiring grad
                    int_ok = t.is_floating_point()
                    cands = self.tensors(lambda u: u.dim() <= min(1, region) and u.numel() <= 4
                                         and (rg_ok and int_ok or not u.requires_grad)
                                         and not _overlaps(u, t))
                    if not cands:
                        return None
                    val = r.choice(cands)
                    vu = (val,)
                code, uses = f"{x}[{expr}] = {val}", (x,) + iu + vu
        if t.requires_grad and t.is_leaf and r.random() < 0.6:
            code = f"with M.no_grad(): {code}"
        return Stmt(code, (), uses, "inplace")

    def reduce(self):
        r = self.rng
        x = self.pick()
        if x is None:
            return None
        t = self.ns[x]
        nd = t.dim()
        op = r.choice(REDUCE)
        if op == "median" and self._gap("median"):
            op = "amax"
        if op in ("argmax", "argmin") and not self.is_exact(x):
            op = "amax"
        out = self.name()
        d = r.randint(-nd, nd - 1) if nd else None
        args = ""
        if op in ("softmax", "log_softmax", "logsumexp") and self._gap("softmax_special") and not (
                t.is_floating_point() and bool(self.torch.isfinite(t).all())
                and (t.dim() == 0 or t.shape[d] > 1)):
            op = "sum"
        if op in ("amax", "amin", "max", "min", "norm") and self._gap("nan_grad") and (
                t.requires_grad and bool(self.torch.isnan(t).any())):
            op = "sum"
        if op == "cumsum" and self._gap("signed_zero") and t.is_floating_point():
            op = "sum"
        if op in ("softmax", "log_softmax", "cumsum"):
            args = str(d if d is not None else 0)
        elif op in ("max", "min", "median") and d is not None and r.random() < 0.6:
            tail = r.choice([".values", ".indices", "[0]"])
            if tail == ".indices" and not self.is_exact(x):
                tail = ".values"
            kd = ", keepdim=True" if r.random() < 0.3 else ""
            return Stmt(f"{out} = {x}.{op}({d}{kd}){tail}", (out,), (x,), "reduce")
        elif op in ("var", "std"):
            args = r.choice(["", f"{d}" if d is not None else "", "correction=0",
                             f"dim={d}, keepdim=True" if d is not None else ""])
            if self._gap("var_correction"):
                args = (args + ", correction=0").lstrip(", ").replace("=0, correction", "")
        elif op == "norm":
            args = r.choice(["", "p=1", f"dim={d}" if d is not None else ""])
        elif op == "logsumexp":
            args = str(d if d is not None else 0)
        elif d is not None and r.random() < 0.6:
            args = r.choice([f"{d}", f"dim={d}, keepdim=True", f"dim=({d},)",
                             "dim=(0, -1)" if nd >= 2 else f"{d}"])
            if op in ("prod", "argmax", "argmin", "count_nonzero", "all", "any") and "(" in args:
                args = str(d)
        form = f"{x}.{op}({args})" if r.random() < 0.7 else (
            f"M.{op}({x}{', ' + args if args else ''})")
        return Stmt(f"{out} = {form}", (out,), (x,), "reduce")

    def matmul(self):
        r = self.rng
        x = self.pick(lambda t: t.is_floating_point() and t.dim() >= 1)
        if x is None:
            return None
        t = self.ns[x]
        k = t.shape[-1]
        cands = self.tensors(lambda u: u.dim() >= 1 and u.dtype == t.dtype and (
            u.shape[0] == k if u.dim() == 1 else u.shape[-2] == k))
        pre = []
        if cands and r.random() < 0.6:
            y = r.choice(cands)
        else:
            st = self.data(r.choice([(k,), (k, 2), (k, 3), (2, k, 1)]), _dtype(t))
            pre = st if isinstance(st, list) else [st]
            y = pre[-1].defines[0]
        out = self.name()
        form = r.choice([f"{x} @ {y}", f"M.matmul({x}, {y})", f"{x}.matmul({y})"])
        return pre + [Stmt(f"{out} = {form}", (out,), (x, y), "op")]

    def cat(self):
        r = self.rng
        x = self.pick(lambda t: t.dim() >= 1)
        if x is None:
            return None
        t = self.ns[x]
        cands = self.tensors(lambda u: u.shape == t.shape)
        y = r.choice(cands)
        if self._gap("cat_empty_dtype") and t.numel() == 0 and self.ns[y].dtype != t.dtype:
            return None
        out = self.name()
        fn = r.choice(["cat", "stack"])
        return Stmt(f"{out} = M.{fn}([{x}, {y}], {r.randint(0, t.dim() - 1)})", (out,), (x, y),
                    "op")

    def read(self):
        r = self.rng
        x = self.pick()
        if x is None:
            return None
        t = self.ns[x]
        out = self.name("r")
        opts = [f"{x}.tolist()", f"repr({x})", f"str({x})", f"{x}.sum().item()",
                f"{x}.detach().numpy().copy()", f"{x}.shape", f"{x}.stride()",
                f"{x}.is_contiguous()", f"bool({x}.any())"]
        if t.numel() == 1:
            opts += [f"{x}.item()", f"float({x})"]
        if not t.requires_grad and not (self._gap("numpy_view_readonly") and t._base is not None):
            # NOTE: a live `.numpy()` shares memory; later writes to either side show
            opts += [f"{x}.numpy()"] * 3
        if self._gap("layout"):
            opts = [o for o in opts if not o.endswith(("stride()", "is_contiguous()"))]
        code = r.choice(opts)
        self.was_read.add(t.untyped_storage().data_ptr())
        name = out
        if code.endswith(".numpy()"):
            name = self.name("a")
        return Stmt(f"{name} = {code}", (name,), (x,), "read")

    def np_write(self):
        r = self.rng
        arrays = self.arrays()
        if not arrays:
            return None
        a = r.choice(arrays)
        arr = self.ns[a]
        val = _fmt_num(r.choice([100, 7, -2]) if arr.dtype.kind in "iu" else (
            r.random() < 0.5 if arr.dtype.kind == "b" else r.choice([100.0, -2.5, 7.0])))
        idx = r.choice(["0", "...", "-1", "::2"]) if arr.ndim else "..."
        code = r.choice([f"{a}[{idx}] = {val}", f"{a}[{idx}] = {val}",
                         f"{a} *= 2" if arr.dtype.kind in "fiu" else f"{a}[...] = True"])
        return Stmt(code, (), (a,), "np_write")

    def backward(self, final=False):
        r = self.rng
        if self.backward_failed:    # torch may have freed part of the graph: no retry
            return None
        if not final and self._gap("second_backward_shared"):
            return None
        x = self.pick(lambda t: t.requires_grad and t.is_floating_point())
        if x is None:
            return None
        t = self.ns[x]
        rebuilt = self.rebuilt()
        if rebuilt and r.random() < 0.3:
            name, rhs = rebuilt
            out = self.name("r")
            return [Stmt(f"{out} = repr({name})", (out,), (name,), "read"),
                    Stmt(f"({rhs}).sum().backward()", (), (name,), "backward")]
        elif t.dim() == 0 and r.random() < 0.5:
            code = f"{x}.backward()"
        else:
            code = r.choice([f"{x}.sum().backward()", f"({x} * {x}).mean().backward()",
                             f"{x}.backward(M.ones_like({x}))" if not final else
                             f"{x}.exp().sum().backward()", f"({x} ** 2).sum().backward()"])
        if not final and r.random() < 0.3:
            nonleaf = self.tensors(lambda u: u.requires_grad and not u.is_leaf and not (
                self._gap("retain_grad_view") and u._base is not None))
            if nonleaf:
                return Stmt(f"{r.choice(nonleaf)}.retain_grad()", (), (), "op")
        return Stmt(code, (), (x,), "backward")

    # -- the program ---------------------------------------------------------------
    KINDS = [("data", 1.0), ("unary", 2.0), ("binary", 2.5), ("where", 0.4), ("view", 2.5),
             ("index_read", 1.2), ("inplace", 2.2), ("reduce", 1.8), ("matmul", 0.6),
             ("cat", 0.3), ("read", 1.2), ("np_write", 0.8), ("backward", 0.3)]

    def data_stmts(self, *args) -> list[Stmt]:
        """A data line (or an array and a tensor over it); its tensor counts as exact."""
        st = self.data(*args)
        st = st if isinstance(st, list) else [st]
        self.exact.add(st[-1].defines[0])
        return st

    def draw(self) -> list[Stmt] | None:
        kinds, weights = zip(*self.KINDS)
        kind = self.rng.choices(kinds, weights)[0]
        if kind == "data":
            return self.data_stmts()
        if kind == "np_write" and self._gap("numpy_write"):
            return None
        try:
            st = getattr(self, kind)()
        except Exception:  # noqa: BLE001 - torch refuses to read a view it invalidated, or
            return None    # an index probe is out of range: draw again
        if st is None:
            return None
        return st if isinstance(st, list) else [st]

    def keep_error(self, e: BaseException) -> bool:
        """Whether torch's error may be kept as a line ember must reject too."""
        text = str(e)
        if TORCH_LIMITS.search(text):
            return False
        if self._gap("overlap_inplace") and "refer to a single memory location" in text:
            return False
        if self._gap("missed_inplace_check") and "modified by an inplace operation" in text:
            return False
        if self._gap("int_div_zero") and "ZeroDivisionError" in text:
            return False
        return True

    def whole_slice(self, t, expr: str) -> bool:
        """Whether `expr` indexes all of `t`, which requires grad, and that is a known gap.

        ember's `x[:]`, `x[...]`, `x[0:n]` return `x` itself (a leaf), torch a new view.
        """
        if not (self._gap("full_slice_is_self") and t.requires_grad and "[" in expr):
            return False
        try:
            return tuple(eval(expr, self.ns).shape) == tuple(t.shape)  # noqa: S307
        except Exception:  # noqa: BLE001 - torch rejects it: the candidate is dropped anyway
            return False

    def shares_with_grad(self, t) -> bool:
        """Whether a bound tensor that requires grad shares `t`'s storage."""
        ptr = t.untyped_storage().data_ptr()
        return any(_safe(lambda u: u.requires_grad and u.untyped_storage().data_ptr() == ptr, u)
                   for u in self.ns.values() if isinstance(u, self.torch.Tensor))

    def moderate(self, t) -> bool:
        """Whether `t`'s finite values are small enough for sin/cos to agree everywhere.

        NOTE: float32 sin(6e27) is computed by different argument reductions (or in
        float64) with different, equally defensible results; the fuzzer keeps out.
        """
        if not t.is_floating_point() or t.numel() == 0:
            return True
        a = t.detach().abs()
        return bool((a[self.torch.isfinite(a)] < 1e4).all())

    def finite(self, t) -> bool:
        """Whether torch tensor `t` holds only finite values."""
        return not t.is_floating_point() or bool(self.torch.isfinite(t).all())

    def empty_view(self, expr: str) -> bool:
        """Whether `expr` is an empty view, and empty views are a known gap."""
        if not self._gap("empty_view_offset"):
            return False
        try:
            return eval(expr, self.ns).numel() == 0  # noqa: S307
        except Exception:  # noqa: BLE001 - torch rejects it: the candidate is dropped anyway
            return False

    def rebuilt(self) -> tuple | None:
        """(name, right-hand side) of an earlier op line whose result requires grad.

        Building the same expression again and backpropagating it, after its first
        value was read, is how a stale backward plan shows (issue: plans replayed for
        another graph).
        """
        if self._gap("plan_key"):
            return None
        rhs = [(s.defines[0], s.code.split(" = ", 1)[1]) for s in self.stmts
               if s.kind == "op" and len(s.defines) == 1 and not s.expect_error
               and _safe(lambda t: t.requires_grad and t.is_floating_point(),
                         self.ns.get(s.defines[0]))]
        return self.rng.choice(rhs) if rhs else None

    def is_low(self, x: str) -> bool:
        """Whether `x` is a float16/bfloat16 tensor (or one drawn but not yet run)."""
        t = self.ns.get(x)
        return t is None or t.dtype in (self.torch.float16, self.torch.bfloat16)

    def is_exact(self, x: str) -> bool:
        """Whether `x`'s values are as written: integral, or data not yet rounded by an op.

        NOTE: argmax/argmin and max(dim).indices of computed floats pick between values
        that tie in exact arithmetic; a last-ulp difference picks another index.
        """
        return x in self.exact or (x in self.ns and not self.ns[x].is_floating_point())

    def has_views(self, x: str) -> bool:
        """Whether tensor `x` is a view or another bound tensor shares its storage."""
        t = self.ns[x]
        if t._base is not None:
            return True
        ptr = t.untyped_storage().data_ptr()
        return any(k != x and _safe(lambda u: u.untyped_storage().data_ptr() == ptr, u)
                   for k, u in self.ns.items() if isinstance(u, self.torch.Tensor))

    def shares_numpy(self, t) -> bool:
        """Whether torch tensor `t`'s storage overlaps a NumPy array of the program."""
        st = t.untyped_storage()
        lo, hi = st.data_ptr(), st.data_ptr() + st.nbytes()
        for v in self.ns.values():
            if isinstance(v, np.ndarray) and v.nbytes:
                a = v.__array_interface__["data"][0]
                if a < hi and lo < a + v.nbytes:
                    return True
        return False

    def try_add(self, stmts: list[Stmt]) -> bool:
        """Run `stmts` in torch; keep them if they run (or, rarely, as an expected error)."""
        for i, s in enumerate(stmts):
            e = exec_stmt(s, self.ns)
            if e is not None:
                last = i == len(stmts) - 1
                if last and self.keep_error(e) and s.kind in KEPT_ERRORS and (
                        self.rng.random() < P_ERROR):
                    self.stmts += stmts[:i] + [Stmt(s.code, (), s.uses, s.kind, True)]
                    return True
                for name in (n for st in stmts for n in st.defines):
                    self.ns.pop(name, None)
                if s.kind == "backward":
                    self.backward_failed = True
                return False
        self.stmts += stmts
        return True

    def program(self) -> Program:
        r = self.rng
        length = r.randint(5, 15)
        for _ in range(r.randint(1, 2)):
            self.try_add(self.data_stmts())
        tries = 0
        while len(self.stmts) < length - 1 and tries < 80:
            tries += 1
            st = self.draw()
            if st:
                self.try_add(st)
        for _ in range(10):
            st = self.backward(final=True)
            if st is None or self.try_add(st if isinstance(st, list) else [st]):
                break
        return Program(self.stmts)


def _overlaps(u, t) -> bool:
    """Whether torch tensors `u` and `t` share a storage.

    NOTE: an in-place op whose argument partly overlaps its target (`x.mul_(x.diagonal())`)
    has no defined result in torch (it reads what it already wrote), so the generator
    never draws one; torch's own overlap errors come from expanded targets.
    """
    return u.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()


def _is_int(v) -> bool:
    """Whether an operand (a torch tensor or a literal's text) is integral."""
    if hasattr(v, "is_floating_point"):
        return not v.is_floating_point()
    return "." not in str(v) and "math" not in str(v)


def _safe(pred, t) -> bool:
    """pred(t), False where torch refuses to read `t` (an invalidated multi-output view)."""
    try:
        return bool(pred(t))
    except RuntimeError:
        return False


def _dtype(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def _is_name(s: str) -> bool:
    return s[:1] in "va" and s[1:].isdigit()


def _broadcasts(a, b) -> bool:
    """Whether shape `a` broadcasts to shape `b` (for in-place right-hand sides too)."""
    if len(a) > len(b):
        return False
    return all(x in (1, y) for x, y in zip(reversed(a), reversed(b)))


def _factor(n: int, r: random.Random) -> tuple:
    """A random shape with `n` elements."""
    if n == 0:
        return (0,)
    dims = []
    m = n
    for f in (2, 3, 2, 2):
        if m % f == 0 and r.random() < 0.5:
            dims.append(f)
            m //= f
    dims.append(m)
    r.shuffle(dims)
    if r.random() < 0.2:
        dims.insert(0, 1)
    if r.random() < 0.3:
        dims[r.randrange(len(dims))] = -1
    return tuple(dims)


def generate(seed: int, gaps=frozenset()) -> Program:
    """The program drawn for `seed` (the same program for the same seed and gaps)."""
    return Gen(seed, gaps).program()
