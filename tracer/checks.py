"""The two checks of `em.compile(fn, check=...)`.

`check=True` (`retrace_check`): on the first few calls that replay a traced program,
and then on every 64th, the function is traced again on placeholders and the new
graph is compared with the replayed one. A difference means the program depends on
something its guards do not watch (a Python flag the body branches on, say): the
call raises `CheckError`, naming the first node that differs and the line of the
function that built it, before anything is written back.

`check="fp64"` (`fp64_check`): each call also evaluates the traced graph with the
reference interpreter in float64 (float inputs upcast exactly, every float op
computed in float64, constants at their Python value) and measures, per output, the
error of the compiled result and of the uncompiled one (the same graph evaluated
node by node in its own dtypes, as lazy mode rounds) against it. Errors are
normwise: max |y - ref| / max |ref|, infinite where y is not finite and ref is.
The budget of a dtype is a few of its ulps, plus the rounding a reduction of
length K adds in its accumulator:

    budget = ULPS[dtype] * eps(dtype) + 4 * sqrt(K) * eps(accumulator)

with ULPS 4 for float16 and bfloat16 (about 4e-3 and 3e-2), 64 for float32
(about 8e-6) and float64; float16 and bfloat16 accumulate in float32. When a
compiled output exceeds its budget, the report names the first fused kernel (in
schedule order, the groups of ir/passes/fusion.py) one of whose stored values
exceeds its own budget, and the line of the function that built that value.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..ir import dtypes as dt
from ..ir.graph import Graph, toposort
from ..ir.ops import Op
from ..runtime.buffers import lookup
from ..runtime.interpreter import IMPL, _conform

__all__ = ["CheckError", "CheckReport", "OutputError", "CHECK_EVERY", "CHECK_FIRST",
           "ULPS", "budget", "fp64_check", "retrace_check"]

CHECK_FIRST = 3   # check=True re-traces the first CHECK_FIRST replays...
CHECK_EVERY = 64  # ...and every CHECK_EVERY-th one after them

ULPS = {"float16": 4, "bfloat16": 4, "float32": 64, "float64": 64}


class CheckError(RuntimeError):
    """`em.compile(fn, check=True)` found that fn now builds another graph than the one
    it replays: a guard is missing (fn branches on state the trace did not see)."""


# -- source lines --------------------------------------------------------------------

def _lines_of(nodes: list, lines: dict | None) -> dict[int, tuple[str, int]]:
    """(file, line) for each node: where it was built, or else where its nearest user
    (then its nearest input) was, for nodes built inside a composite op or a write."""
    lines = lines or {}
    out = {id(n): lines[n] for n in nodes if n in lines}
    for n in reversed(nodes):  # users come after their inputs
        where = out.get(id(n))
        if where is not None:
            for i in n.inputs:
                out.setdefault(id(i), where)
    for n in nodes:
        if id(n) not in out:
            for i in n.inputs:
                if id(i) in out:
                    out[id(n)] = out[id(i)]
                    break
    return out


def _fmt_line(where) -> str:
    if where is None:
        return "<unknown line>"
    import linecache
    filename, lineno = where
    return f"{filename}:{lineno}: {linecache.getline(filename, lineno).strip()}"


# -- check=True ----------------------------------------------------------------------

def _describe_nodes(program) -> tuple[list, list]:
    """The program's nodes in order, and a description of each that two traces of the
    same code share (inputs by position, data by value, random draws by offset)."""
    nodes = toposort(program.outputs)
    index = {id(n): i for i, n in enumerate(nodes)}
    source = {buf.uid: k for k, buf in enumerate(program.sources)}
    out = []
    for n in nodes:
        arg = n.arg
        if n.op is Op.BUFFER:
            if arg in source:
                arg = ("input", source[arg])
            else:
                a = lookup(arg).array
                arg = ("data", a.dtype.str, a.tobytes())
        elif n.op is Op.RAND:
            arg = (arg[1] - program.seq0, arg[2])
        out.append((n.op, arg, n.dtype, n.shape, tuple(index[id(i)] for i in n.inputs)))
    return nodes, out


def _fmt_node(desc) -> str:
    op, arg, dtype, shape, _ = desc
    if op is Op.BUFFER:
        arg = f"input {arg[1]}" if arg[0] == "input" else "data"
    text = f"{op.name.lower()}"
    if arg is not None:
        text += f"({arg})"
    return f"{text} -> {dtype.short}[{','.join(map(str, shape))}]"


def _effects(program) -> tuple:
    """What a replay returns and writes back, in a comparable form."""
    captures = tuple((kind, x() if kind == "storage" else x) for kind, x in program.captures)
    return (program.structure, program.writes, program.grads, program.cap_writes,
            program.root_grads, captures, program.n_random)


def retrace_check(name: str, old, new) -> None:
    """Raise CheckError if `new` (a fresh trace, or why it failed) differs from `old`."""
    if isinstance(new, str):
        raise CheckError(f"em.compile(check=True): {name} replays a traced graph, but "
                         f"tracing it again now fails ({new}): a guard is missing")
    old_nodes, old_desc = _describe_nodes(old)
    new_nodes, new_desc = _describe_nodes(new)
    for i in range(max(len(old_desc), len(new_desc))):
        a = old_desc[i] if i < len(old_desc) else None
        c = new_desc[i] if i < len(new_desc) else None
        if a == c:
            continue
        lines = _lines_of(new_nodes, new.lines) if c is not None else \
            _lines_of(old_nodes, old.lines)
        where = lines.get(id(new_nodes[i] if c is not None else old_nodes[i]))
        raise CheckError(
            f"em.compile(check=True): {name} would now build another graph than the one it "
            f"replays (a guard is missing: does it branch on Python state?); first "
            f"differing node, number {i}: replayed "
            f"{'nothing' if a is None else _fmt_node(a)}, now "
            f"{'nothing' if c is None else _fmt_node(c)}, built at {_fmt_line(where)}")
    if _effects(old) != _effects(new):
        raise CheckError(f"em.compile(check=True): {name} would now return or write back "
                         "other values than the graph it replays (a guard is missing)")


# -- check="fp64" --------------------------------------------------------------------

class _Wide:
    """A node as the float64 evaluation sees it: float dtypes become float64 (`wide`),
    and a random draw takes this call's sequence numbers (`rand`: see fp64_check)."""

    __slots__ = ("op", "arg", "dtype", "shape", "inputs")

    def __init__(self, n, wide: bool = True, rand=None):
        self.op, self.arg, self.shape, self.inputs = n.op, n.arg, n.shape, n.inputs
        self.dtype = dt.float64 if wide and n.dtype.is_floating_point else n.dtype
        if rand is not None and n.op is Op.RAND:
            seed, first, seq0 = rand
            self.arg = (seed, first + n.arg[1] - seq0, n.arg[2])

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _evaluate(nodes: list, wide: bool, rand=None) -> dict[int, np.ndarray]:
    """Every node's value, node by node: in its dtype, or with float ops in float64."""
    values: dict[int, np.ndarray] = {}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for n in nodes:
            args = [values[id(i)] for i in n.inputs]
            if n.op is Op.RAND:
                v = _conform(n, IMPL[n.op](_Wide(n, False, rand)))
                if wide:
                    v = v.astype(np.float64)
            elif not wide or n.op is Op.BUFFER or not n.dtype.is_floating_point:
                # NOTE: inputs keep their values; ops on other dtypes (comparisons,
                # integer casts) read the float64 operands
                v = _conform(n, IMPL[n.op](n, *args))
                if wide and n.dtype.is_floating_point:
                    v = v.astype(np.float64)
            else:
                stub = _Wide(n)
                v = np.asarray(IMPL[n.op](stub, *args)).astype(np.float64, copy=False)
            values[id(n)] = v
    return values


def _error(y: np.ndarray, ref: np.ndarray) -> float:
    """max |y - ref| / max |ref| (normwise); inf where y is not finite and ref is."""
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if y.size == 0:
        return 0.0
    finite = np.isfinite(ref)
    if np.any(finite & ~np.isfinite(y)):
        return math.inf
    if np.any(~finite & (y != ref) & ~(np.isnan(y) & np.isnan(ref))):
        return math.inf
    if not finite.any():
        return 0.0
    diff = np.abs(y[finite] - ref[finite]).max()
    scale = np.abs(ref[finite]).max()
    return float(diff / scale) if scale > 0 else float(diff)


def _budgets(nodes: list) -> dict[int, float]:
    """Each node's budget: the largest of its dtype's and its inputs' (a float32 value
    computed from float16 ones carries their error), for the longest reduction (or
    matmul inner size) it depends on."""
    length: dict[int, int] = {}
    out: dict[int, float] = {}
    for n in nodes:
        k = max((length[id(i)] for i in n.inputs), default=1)
        if n.op in (Op.REDUCE_SUM, Op.REDUCE_PROD, Op.REDUCE_MAX, Op.REDUCE_MIN):
            k = max(k, math.prod(n.inputs[0].shape[a] for a in n.arg))
        elif n.op is Op.MATMUL:
            k = max(k, n.inputs[0].shape[-1])
        elif n.op is Op.CUMSUM:
            k = max(k, n.shape[n.arg] if n.shape else 1)
        length[id(n)] = k
        own = budget(n.dtype, k) if n.dtype.is_floating_point and n.op is not Op.BUFFER \
            else 0.0
        out[id(n)] = max([own] + [out[id(i)] for i in n.inputs])
    return out


def budget(dtype: dt.DType, length: int = 1) -> float:
    """The error `check="fp64"` allows a value of `dtype` that depends on a reduction
    of `length` elements (see the module docstring)."""
    eps = float(np.finfo(np.float32 if dtype is dt.bfloat16 else dtype.np).eps)
    if dtype is dt.bfloat16:
        eps = 2.0 ** -7
    acc = float(np.finfo(np.float64 if dtype is dt.float64 else np.float32).eps)
    return ULPS.get(dtype.name, 64) * eps + 4 * math.sqrt(length) * acc


@dataclass
class OutputError:
    """One output's errors against the float64 evaluation."""

    name: str            # "returned value 0", "argument 1 (written back)", ...
    dtype: str
    compiled: float      # normwise error of the compiled result
    uncompiled: float    # of the node-by-node evaluation in the graph's dtypes
    budget: float

    @property
    def ok(self) -> bool:
        return self.compiled <= self.budget


@dataclass
class CheckReport:
    """What `em.compile(fn, check="fp64")` found on the last call (`fn.last_check`).

    `outputs`: an OutputError per float output. Where a compiled output exceeds its
    budget, `kernel` names the first fused kernel whose stored values exceed theirs
    (`k3`, as EMBER_DEBUG=2 and `em.explain(graph=True)` name it), `op` the op of
    that value and `line` the function's line (file, number) that built it.
    """

    function: str
    outputs: list = field(default_factory=list)
    kernel: str | None = None
    op: str | None = None
    line: tuple | None = None
    kernel_error: float = 0.0

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    def __str__(self) -> str:
        lines = [f"check='fp64' of {self.function}: "
                 + ("within budget" if self.ok else "compiled error over budget")]
        for o in self.outputs:
            mark = "" if o.ok else "  <-- over budget"
            lines.append(f"  {o.name} ({o.dtype}): compiled error {o.compiled:.3g}, "
                         f"uncompiled {o.uncompiled:.3g}, budget {o.budget:.3g}{mark}")
        if self.kernel is not None:
            lines.append(f"  the error first appears in kernel {self.kernel} ({self.op}, "
                         f"error {self.kernel_error:.3g}), built at {_fmt_line(self.line)}")
        return "\n".join(lines)


def _output_names(program) -> dict[int, str]:
    names: dict[int, str] = {}
    for k, i in program.writes:
        names[i] = f"argument {k} (written back)"
    for k, i in program.grads:
        if i is not None:
            names[i] = f".grad of argument {k}"
    for j, i in program.cap_writes:
        names[i] = f"captured tensor {j} (written back)"
    for r, i in program.root_grads:
        if i is not None:
            names[i] = f".grad of captured tensor {r}"
    n = 0
    for spec in program.structure[1]:
        if spec[0] == "out" and spec[1] not in names:
            names[spec[1]] = f"returned value {n}"
        n += 1
    return names


def _first_bad_kernel(program, report: CheckReport, rand) -> None:
    """Set report's kernel, op and line: the first kernel whose stored values exceed
    their budget when computed node by node in their dtypes (see the module doc)."""
    from ..ir.passes.pipeline import lower
    from ..runtime.compiled import _fold
    from ..runtime.config import options

    plan = lower(Graph(tuple(program.outputs)), fold=_fold, tile_elems=options.tile_elems)
    nodes = toposort(plan.graph.outputs)
    narrow, wide = _evaluate(nodes, False, rand), _evaluate(nodes, True, rand)
    limit = _budgets(nodes)
    lines = _lines_of(toposort(program.outputs), program.lines)
    lines.update(_lines_of(nodes, {n: lines[id(n)] for n in nodes if id(n) in lines}))
    for g in plan.steps:
        if g.kind == "view":
            continue
        for n in g.outputs or g.nodes[-1:]:
            if not n.dtype.is_floating_point:
                continue
            err = _error(narrow[id(n)], wide[id(n)])
            if err > limit[id(n)]:
                report.kernel, report.op, report.kernel_error = f"k{g.id}", n.op.name, err
                report.line = lines.get(id(g.nodes[0]))
                # NOTE: inside the kernel, the first member over budget (as rounded node
                # by node) is where the formulation loses precision: name its line
                for m in g.nodes:
                    if m.dtype.is_floating_point and m.op is not Op.EXPAND:
                        e = _error(narrow[id(m)], wide[id(m)])
                        if e > limit[id(m)]:
                            report.op, report.kernel_error = m.op.name, e
                            report.line = lines.get(id(m)) or report.line
                            break
                return


def fp64_check(name: str, program, values: list[np.ndarray], rand=None) -> CheckReport:
    """Compare the compiled `values` of `program` (inputs bound to its sources' arrays)
    and its node-by-node evaluation with a float64 one (see the module docstring).

    `rand`: (seed, first sequence number) of this call's random draws."""
    if rand is not None:
        rand = (*rand, program.seq0)
    nodes = toposort(program.outputs)
    narrow, wide = _evaluate(nodes, False, rand), _evaluate(nodes, True, rand)
    limit = _budgets(nodes)
    names = _output_names(program)
    report = CheckReport(name)
    for i, out in enumerate(program.outputs):
        if not out.dtype.is_floating_point:
            continue
        ref = wide[id(out)]
        report.outputs.append(OutputError(
            names.get(i, f"output {i}"), out.dtype.name,
            _error(values[i].reshape(out.shape), ref), _error(narrow[id(out)], ref),
            limit[id(out)]))
    if not report.ok:
        _first_bad_kernel(program, report, rand)
    return report
