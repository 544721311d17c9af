"""A fuzz program: a list of statements, run by three interpreters, printed as Python.

A `Stmt` is one line of Python written against a module named `M` (torch or ember:
ember speaks PyTorch's API), with the names it defines and uses and its kind. The
same list runs as torch (the oracle), as ember lazy and as ember eager (`run`); each
run ends in a `Snapshot` of every variable (shape, dtype, strides, values, gradients,
the NumPy arrays shared), and `compare` lists where two snapshots differ.

    >>> prog = Program([Stmt("v0 = M.tensor([1.0, 2.0], requires_grad=True)", ("v0",)),
    ...                 Stmt("v1 = (v0 * 3).sum()", ("v1",), ("v0",)),
    ...                 Stmt("v1.backward()", (), ("v1",), "backward")])
    >>> print(prog.source())       # a runnable snippet
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

# (rtol, atol) by result dtype. Programs chain several ops, so these are looser than
# one op's tolerance in helpers.TOLERANCE; integers and bools are exact.
TOLERANCE = {
    "float64": (1e-7, 1e-9),
    "float32": (2e-4, 1e-5),
    "float16": (2e-2, 2e-2),
    "bfloat16": (8e-2, 8e-2),
}

_GRAD_FN = re.compile(r"grad_fn=<\w+>")
_NAME = re.compile(r"\b([var])(\d+)\b")


@dataclass(frozen=True)
class Stmt:
    """One line of a program.

    `code` uses `M` for the framework module and `np` for NumPy; `defines` and `uses`
    name the program's variables it binds and reads; `kind` is one of data, op, view,
    inplace, index, reduce, read, np_write, backward; `expect_error` marks a line torch
    rejects, which ember must reject too.
    """

    code: str
    defines: tuple = ()
    uses: tuple = ()
    kind: str = "op"
    expect_error: bool = False

    def renamed(self, prefix: str) -> Stmt:
        """The same line with every variable renamed `<letter><prefix><n>`."""
        def sub(text):
            return _NAME.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", text)
        return replace(self, code=sub(self.code), defines=tuple(sub(n) for n in self.defines),
                       uses=tuple(sub(n) for n in self.uses))


@dataclass
class Program:
    """A list of statements; `source()` prints it as a runnable snippet."""

    stmts: list = field(default_factory=list)

    def source(self, show=()) -> str:
        """The program as a runnable snippet, run as the fuzzer runs it.

        The lines form `program(M)`, run as torch, then ember lazy, then ember eager
        in one process; the snippet prints the variables named in `show` from each.
        """
        head = ["import math", "import numpy as np", "import torch", "import ember as em", "",
                "def _sync(ns):  # ember lazy computes what is bound before a NumPy write",
                "    vs = [u for v in ns.values() for u in (v if isinstance(v, tuple) else (v,))]",
                "    em.realize(*[v for v in vs if isinstance(v, em.Tensor)])", "",
                "def program(M):"]
        body = []
        for s in self.stmts:
            if s.kind == "np_write":
                body.append("if M is em and not em.is_eager(): _sync(locals())")
            if s.expect_error:
                body.append(f"try:\n    {s.code}\nexcept Exception as e:  # torch raises here\n"
                            f"    print('raised:', type(e).__name__, e)")
            else:
                body.append(s.code)
        body.append("return locals()")
        lines = head + ["    " + ln for b in body for ln in b.splitlines()]
        lines += ["", "ref = program(torch)", "em.set_eager(False)", "lazy = program(em)",
                  "em.set_eager(True)", "eager = program(em)"]
        for n in show:
            grad = (f"getattr(r['{n}'], 'grad', None)" if n[:1] == "v" else "")
            lines.append(f"for r in (ref, lazy, eager): print('{n}', r.get('{n}')"
                         + (f", {grad})" if grad else ")"))
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.stmts)


# ---------------------------------------------------------------------------
# running

@dataclass
class Run:
    """What one interpreter did: the namespace, where it raised, and the error."""

    ns: dict
    errors: dict = field(default_factory=dict)   # statement index -> exception
    aborted: int | None = None                   # first unexpected error's index


def namespace(module) -> dict:
    """A fresh namespace for one run."""
    return {"M": module, "np": np, "math": math, "__builtins__": __builtins__}


def exec_stmt(stmt: Stmt, ns: dict) -> BaseException | None:
    """Run one statement in `ns`; the exception it raised, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(stmt.code, ns)  # noqa: S102 - the fuzzer's own generated source
    except Exception as e:  # noqa: BLE001 - compared across frameworks
        return e
    return None


def run(prog: Program, module, before_np_write=None) -> Run:
    """Run `prog` with `M = module`; stop at the first error that was not expected.

    `before_np_write(ns)` is called before each line that writes a NumPy array
    (ember lazy realises every tensor there: see `ember_lazy`).
    """
    r = Run(namespace(module))
    for i, s in enumerate(prog.stmts):
        if s.kind == "np_write" and before_np_write is not None:
            before_np_write(r.ns)
        before = dict(r.ns) if s.expect_error and before_np_write is not None else None
        e = exec_stmt(s, r.ns)
        if e is None and before is not None:
            e = _lazy_error(r.ns, before)
        if e is not None:
            r.errors[i] = e
            if not s.expect_error:
                r.aborted = i
                break
    return r


def _lazy_error(ns: dict, before: dict) -> BaseException | None:
    """The error a line torch rejects gives ember lazy when its values are computed.

    NOTE: an error that depends on values (an integer division by zero) is raised by
    lazy ember when the value is computed, not at the line: the line's new bindings are
    computed now, and if that raises, the line raised and binds nothing, as in torch.
    """
    new = {k: v for k, v in ns.items() if before.get(k, _MISSING) is not v}
    try:
        realize_all(new)
    except Exception as e:  # noqa: BLE001 - compared across frameworks
        for k in new:
            if k in before:
                ns[k] = before[k]
            else:
                del ns[k]
        return e
    return None


_MISSING = object()


def realize_all(ns: dict) -> None:
    """Compute every ember tensor bound in `ns` (lazy mode, before a NumPy write).

    NOTE: ember's documented rule is that a lazy expression built before a NumPy
    write and computed after it sees the write, where torch computed it before; the
    fuzzer realises what is bound before each write so both orders agree.
    """
    import ember as em
    # NOTE: a tuple result (`x.max(0)`, `x.unbind()`) binds tensors too
    vs = [u for v in ns.values() for u in (v if isinstance(v, tuple) else (v,))]
    ts = [v for v in vs if isinstance(v, em.Tensor)]
    if ts:
        em.realize(*ts)


# ---------------------------------------------------------------------------
# snapshots and comparison

@dataclass
class Entry:
    """One variable's observable state."""

    kind: str                 # tensor, array, value, text
    shape: tuple = ()
    dtype: str = ""
    stride: tuple = ()
    requires_grad: bool = False
    values: object = None     # ndarray (float64/int64/bool) or a Python value
    grad: object = "absent"   # "absent" (not a leaf), None, or an Entry-like ndarray


def _tensor_values(t, is_torch: bool):
    """A tensor's values as a NumPy array: floats as float64, others unchanged."""
    d = t.detach()
    if d.is_floating_point():
        d = d.double()
    a = d.numpy() if is_torch else np.asarray(d.numpy())
    return np.array(a, copy=True)


def _dtype_name(d) -> str:
    return str(d).removeprefix("torch.").removeprefix("ember.")


def snapshot(ns: dict, names, is_torch: bool) -> dict:
    """Each bound name's Entry (names a run never bound are left out)."""
    out = {}
    for name in names:
        if name not in ns:
            continue
        try:
            out[name] = _entry(ns[name], is_torch)
        except Exception as e:  # noqa: BLE001 - reading the variable raised
            out[name] = Entry("error", values=f"{type(e).__name__}: {_short(e)}")
    return out


def _entry(v, is_torch: bool):
    if hasattr(v, "requires_grad") and hasattr(v, "stride") and not isinstance(v, np.ndarray):
        e = Entry("tensor", tuple(v.shape), _dtype_name(v.dtype), tuple(v.stride()),
                  bool(v.requires_grad), _tensor_values(v, is_torch))
        if v.is_leaf or getattr(v, "retains_grad", False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = v.grad
            e.grad = None if g is None else (tuple(g.shape), _dtype_name(g.dtype),
                                             _tensor_values(g, is_torch))
        return e
    if isinstance(v, np.ndarray):
        return Entry("array", v.shape, v.dtype.name, values=v.copy())
    if isinstance(v, str):
        # NOTE: grad_fn names are compared by the grad_fn tests, not here
        text = v.replace("torch.", "").replace("ember.", "")
        return Entry("text", values=_GRAD_FN.sub("grad_fn=<>", text))
    if isinstance(v, (tuple, list)) and not hasattr(v, "_fields") and not (
            v and hasattr(v[0], "stride")):
        return Entry("value", values=v)
    if isinstance(v, (bool, int, float)):
        return Entry("value", values=v)
    if isinstance(v, (tuple, list)) and v and hasattr(v[0], "stride"):
        return Entry("value", values=tuple(_entry(x, is_torch) for x in v))
    return None   # modules, functions: not compared


def _close(a, b, dtype: str) -> bool:
    """NaN-aware equality of two arrays with the dtype's tolerance."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "biu" and b.dtype.kind in "biu" or dtype not in TOLERANCE:
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64),
                                       equal_nan=True))
        return bool(np.array_equal(a, b))
    rtol, atol = TOLERANCE[dtype]
    return bool(np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol,
                            equal_nan=True))


def _is_entries(v) -> bool:
    return isinstance(v, tuple) and bool(v) and all(isinstance(x, Entry) for x in v)


def _same_value(a, b, rtol: float = 2e-4) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, Entry) and isinstance(b, Entry):
        return not diff_entry(a, b)
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rtol, abs_tol=min(rtol, 1e-5)) or a == b
    return a == b


def diff_entry(t: Entry, e: Entry, low=None) -> list:
    """[(category, detail)] where torch's entry `t` and ember's `e` differ."""
    if e is None or t.kind != e.kind:
        return [("type", f"{t.kind} vs {None if e is None else e.kind}")]
    out = []
    if t.kind == "tensor":
        if t.shape != e.shape:
            return [("shape", f"{t.shape} vs {e.shape}")]
        if t.dtype != e.dtype:
            out.append(("dtype", f"{t.dtype} vs {e.dtype}"))
        if t.requires_grad != e.requires_grad:
            out.append(("requires_grad", f"{t.requires_grad} vs {e.requires_grad}"))
        if not _close(t.values, e.values, _tol(t.dtype, low)):
            out.append(("value", f"{_fmt(t.values)} vs {_fmt(e.values)}"))
        if _strides(t) != _strides(e):
            out.append(("stride", f"{t.stride} vs {e.stride}"))
        out += _diff_grad(t.grad, e.grad, low)
    elif t.kind == "array":
        if t.shape != e.shape or t.dtype != e.dtype:
            return [("array", f"{t.shape} {t.dtype} vs {e.shape} {e.dtype}")]
        if not _close(t.values, e.values, t.dtype):
            out.append(("numpy", f"{_fmt(t.values)} vs {_fmt(e.values)}"))
    elif t.kind == "text":
        if not _same_text(t.values, e.values):
            out.append(("repr", f"{t.values!r} vs {e.values!r}"))
    elif _is_entries(t.values) and _is_entries(e.values) and len(t.values) == len(e.values):
        for i, (a, b) in enumerate(zip(t.values, e.values)):   # (values, indices) and such
            out += [(cat, f"[{i}] {detail}") for cat, detail in diff_entry(a, b)]
    elif not _same_value(t.values, e.values, TOLERANCE.get(low or "float32")[0]):
        out.append(("read", f"{t.values!r} vs {e.values!r}"))
    return out


_NUMBER = re.compile(r"-?(?:\d+\.?\d*(?:e[+-]?\d+)?|inf|nan)")


def _same_text(a: str, b: str) -> bool:
    """Printed tensors equal: the same text around numbers that agree to 3 digits.

    NOTE: low-precision dtypes may round differently in the last digit; the layout,
    the dtype and grad_fn suffixes must match exactly.
    """
    if a == b:
        return True
    na, nb = _NUMBER.findall(a), _NUMBER.findall(b)
    if _NUMBER.sub("#", a).replace(" ", "") != _NUMBER.sub("#", b).replace(" ", ""):
        return False
    fa = [float(x) for x in na]
    fb = [float(x) for x in nb]
    return len(fa) == len(fb) and all(
        x == y or (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=5e-3,
                                                                    abs_tol=1e-3)
        for x, y in zip(fa, fb))


def _strides(e: Entry) -> tuple:
    """Strides of the dims that have more than one element (torch's are free elsewhere)."""
    if 0 in e.shape:
        return ()
    return tuple(st for st, n in zip(e.stride, e.shape) if n > 1)


_RANK = {"float16": 0, "bfloat16": 0, "float32": 1, "float64": 2}


def _tol(dtype: str, low) -> str:
    """The dtype whose tolerance applies: `low`'s (the program's least precise float
    dtype) where it is below `dtype`."""
    if low and dtype in _RANK and _RANK[low] < _RANK[dtype]:
        return low
    return dtype


def _diff_grad(tg, eg, low=None) -> list:
    if isinstance(tg, str) or isinstance(eg, str):
        return [] if tg == eg or isinstance(tg, str) else []
    if (tg is None) != (eg is None):
        return [("grad", f"{'None' if tg is None else _fmt(tg[2])} vs "
                         f"{'None' if eg is None else _fmt(eg[2])}")]
    if tg is None:
        return []
    if tg[0] != eg[0] or tg[1] != eg[1]:
        return [("grad", f"{tg[0]} {tg[1]} vs {eg[0]} {eg[1]}")]
    if not _close(tg[2], eg[2], _tol(tg[1], low)):
        return [("grad", f"{_fmt(tg[2])} vs {_fmt(eg[2])}")]
    return []


def _fmt(a) -> str:
    a = np.asarray(a)
    with np.printoptions(precision=4, threshold=24, edgeitems=3):
        return np.array2string(a, separator=", ").replace("\n", "")


@dataclass
class Mismatch:
    """One difference between torch and an ember mode."""

    mode: str         # "lazy" or "eager"
    category: str     # raise, noraise, value, grad, stride, dtype, shape, numpy, read, repr...
    where: str        # a variable name or a statement
    detail: str
    tag: str = ""     # the known-bug category it belongs to, where one is recognised

    def signature(self) -> tuple:
        return (self.mode, self.category)

    def __str__(self) -> str:
        return f"[{self.mode}] {self.category} {self.where}: torch {self.detail}"


def compare(prog: Program, ref: Run, got: Run, mode: str, is_torch_ref=True) -> list:
    """Every Mismatch between the torch run `ref` and the ember run `got`."""
    out = []
    for i, s in enumerate(prog.stmts):
        te, ee = ref.errors.get(i), got.errors.get(i)
        if te is not None and ee is None and i < (got.aborted if got.aborted is not None
                                                 else len(prog.stmts)):
            out.append(Mismatch(mode, "noraise", f"line {i + 1}: {s.code}",
                                f"raised {type(te).__name__}: {_short(te)}; ember did not"))
        elif te is None and ee is not None:
            tag = "saved_too_much" if "modified by an inplace operation" in str(ee) else ""
            out.append(Mismatch(mode, "raise", f"line {i + 1}: {s.code}",
                                f"ran; ember raised {type(ee).__name__}: {_short(ee)}", tag))
            return out
    # NOTE: a program that touches float16/bfloat16 anywhere may round its float32
    # results (gradients included) through them: compare everything at float16's tolerance
    low = any(w in s.code for s in prog.stmts for w in ("float16", "half", "bfloat16"))
    low = "float16" if low else None
    if not low and any(w in s.code for s in prog.stmts for w in ("float32", ".float()")):
        low = "float32"    # float64 values cast from float32 ones: float32's tolerance
    names = [n for s in prog.stmts for n in s.defines]
    names = list(dict.fromkeys(names))
    # NOTE: a backward() that raises writes no gradient in ember (an error leaves
    # autograd's state as it was); torch's engine may have written some before it
    # reached the error: the gradients of such a program are not compared
    failed_backward = any(i in ref.errors and "backward" in s.code
                          for i, s in enumerate(prog.stmts))
    ts = snapshot(ref.ns, names, True)
    es = snapshot(got.ns, names, False)
    for name, t in ts.items():
        if t is None or t.kind == "error":   # torch cannot read it either
            continue
        if es.get(name) is not None and es[name].kind == "error":
            out.append(Mismatch(mode, "raise", f"reading {name}",
                                f"read it; ember raised {es[name].values}"))
            continue
        for cat, detail in diff_entry(t, es.get(name), low):
            if cat == "grad" and failed_backward:
                continue
            tag = ""
            if cat == "grad" and detail.endswith("vs None") and t.grad is not None and not (
                    np.nan_to_num(np.asarray(t.grad[2], dtype=np.float64), nan=0.0).any()):
                tag = "zero_grad_none"     # torch's gradient is zeros (or 0 * NaN)
            if cat == "stride":
                tag = "layout"
            if cat == "repr" and "".join(t.values.split()) == "".join(es[name].values.split()):
                tag = "repr_wrap"
            out.append(Mismatch(mode, cat, name, detail, tag))
    return out


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:160]
