"""Differential fuzzing of `em.compile`: `python -m tests.fuzz.compile --programs N --seed S`.

Each fuzz program (generate.py: checked line by line against torch as it is drawn)
becomes a function of its input tensors (`CompileCase`): its data lines make the
inputs; each input is either passed as an argument or captured, read from an object
`S` the function reaches without receiving it; the other lines are the body; the
function returns every value the body binds. Some cases take a Python float `s` that
changes between calls (a line `vN = vK.detach() * s + 1` is added), and most drop the
lines that read a value (`.item()`, `.tolist()`, `repr`: graph breaks) so that the
body compiles. The function runs compiled and uncompiled, each on its own copy of the
same inputs, several times on the same data (which the body may update in place) and
once on other data of the same signature; after every call the two must agree on the
returned values, the inputs' (arguments' and captured tensors') values and `.grad`s,
the error raised if any, and which returned values and inputs share memory.
(The uncompiled runs are ember's lazy mode, which the main fuzzer compares with torch.)

A failing case shrinks to the fewest body lines that still fail the same way and
prints as a runnable snippet.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace

from .program import Stmt, _entry, diff_entry, namespace

GAPS = frozenset({"numpy_write"})  # no writes into NumPy arrays the inputs share
P_KEEP_READS = 0.25                # cases that keep their value reads (graph breaks)
P_CAPTURE = 0.5                    # each input is captured rather than passed
P_SCALAR = 0.5                     # cases with a Python float that changes between calls
SCALARS = (0.5, 0.5, 2.0, 2.0, 3.0)  # s at each call (the last on other data)
SAME_DATA_CALLS = 4


class _State:
    """The object captured inputs are read from (`S.v3`)."""

    def __repr__(self) -> str:
        return f"S({', '.join(sorted(vars(self)))})"


@dataclass
class CompileCase:
    """A fuzz program as a function: data lines make inputs; the rest is the body."""

    seed: int
    setup: list                 # data Stmts (and the NumPy arrays they read)
    body: list                  # the function's Stmts
    inputs: list                # names of the input tensors, in order
    captured: frozenset         # of them, those read from S
    scalar: bool = False        # whether the function takes a float `s`
    low: str | None = None      # the least precise float dtype it touches (tolerance)

    @property
    def passed(self) -> list:
        return [n for n in self.inputs if n not in self.captured]

    def function_source(self) -> str:
        """`make(M, S)`, which returns the function."""
        params = self.passed + (["s"] if self.scalar else [])
        lines = ["def make(M, S):", f"    def fn({', '.join(params)}):"]
        defined = []
        for st in self.body:
            code = st.code
            for name in self.captured:
                code = re.sub(rf"(?<![\w.]){name}\b", f"S.{name}", code)
            lines += ["        " + ln for ln in code.splitlines()]
            defined += [n for n in st.defines if n not in defined]
        ret = ", ".join(f"{n!r}: {n}" for n in defined)
        lines += [f"        return {{{ret}}}", "    return fn"]
        return "\n".join(lines)

    def source(self) -> str:
        """A runnable snippet: the inputs, the function, and the calls compared."""
        setup = "\n".join("    " + s.code for s in self.setup)
        names = ", ".join(self.inputs)
        return "\n".join([
            "import math", "import numpy as np", "import ember as em", "M = em",
            "class State: pass", "",
            "def inputs():", setup or "    pass", f"    return [{names}]", "",
            self.function_source(), "",
            f"CAPTURED = {sorted(self.captured)!r}; NAMES = {self.inputs!r}",
            "for compiled in (False, True):",
            "    S = State()",
            "    values = dict(zip(NAMES, inputs()))",
            "    for n in CAPTURED: setattr(S, n, values[n])",
            "    f = make(em, S)",
            "    f = em.compile(f) if compiled else f",
            f"    for s in {SCALARS[:SAME_DATA_CALLS]!r}:",
            "        out = f(*[values[n] for n in NAMES if n not in CAPTURED]"
            + (", s)" if self.scalar else ")"),
            "        print('compiled' if compiled else 'uncompiled', out, values)",
        ])


def case_for(seed: int) -> CompileCase | None:
    """The case drawn for `seed` (None when its program has no input tensor)."""
    import torch

    from .generate import Gen

    gen = Gen(seed, GAPS)
    prog = gen.program()
    rng = random.Random(seed * 7919 + 1)
    stmts = [s for s in prog.stmts if not s.expect_error]
    setup = [s for s in stmts if s.kind == "data"]
    body = [s for s in stmts if s.kind != "data"]
    made = {n for s in setup for n in s.defines}
    inputs = [n for s in setup for n in s.defines if n.startswith("v")]
    if not inputs or any(u in made and not u.startswith("v") for s in body for u in s.uses):
        return None
    if rng.random() >= P_KEEP_READS:
        body = _without(body, [i for i, s in enumerate(body) if s.kind == "read"])
    captured = frozenset(n for n in inputs if rng.random() < P_CAPTURE)
    scalar = False
    floats = [n for n, v in gen.ns.items() if isinstance(v, torch.Tensor) and
              v.is_floating_point() and n.startswith("v") and v.numel() and
              (n in inputs or any(n in s.defines for s in body))]
    if floats and rng.random() < P_SCALAR:
        k = rng.choice(floats)
        body = body + [Stmt(f"v{gen.n + 1} = {k}.detach() * s + 1", (f"v{gen.n + 1}",), (k,))]
        scalar = True
    text = " ".join(s.code for s in stmts)
    low = "float16" if any(w in text for w in ("float16", "half", "bfloat16")) else None
    if low is None and any(w in text for w in ("float32", ".float()")):
        low = "float32"  # NOTE: float64 values cast from float32 ones: float32's tolerance
    return CompileCase(seed, setup, body, inputs, captured, scalar, low)


def _without(body: list, drop: list) -> list:
    """body less the lines at `drop` and every line that uses what they bound."""
    gone = set()
    out = []
    for i, s in enumerate(body):
        if i in drop or any(u in gone for u in s.uses):
            gone.update(s.defines)
            continue
        out.append(s)
    return out


# -- running ---------------------------------------------------------------------

def _inputs(case: CompileCase, other: bool) -> dict:
    """Fresh input tensors (`other`: different values of the same signature)."""
    import ember as em

    ns = namespace(em)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in case.setup:
            exec(s.code, ns)  # noqa: S102 - the fuzzer's own generated source
    values = {n: ns[n] for n in case.inputs}
    if other:
        with em.no_grad():
            for t in values.values():
                if t.numel() and not t._storage.external:
                    t.copy_(_other(t))
    return values


def _other(t):
    import ember as em
    if t.dtype is em.bool:
        return ~t
    if t.is_floating_point():
        return t * 0.5 + 0.25
    return t + 1


@dataclass
class _Side:
    """One way of running the case: its inputs, its S and its function."""

    values: dict
    S: _State
    fn: object
    log: list = field(default_factory=list)


def _side(case: CompileCase, compiled: bool, other: bool) -> _Side:
    import ember as em

    values = _inputs(case, other)
    S = _State()
    for n in case.captured:
        setattr(S, n, values[n])
    ns = namespace(em)
    exec(case.function_source(), ns)  # noqa: S102 - the fuzzer's own generated source
    fn = ns["make"](em, S)
    return _Side(values, S, em.compile(fn) if compiled else fn)


def _call(side: _Side, case: CompileCase, s: float):
    """(returned value, None) or (None, the error) of one call.

    NOTE: the values are computed at once, so that an error that depends on them (an
    integer division by zero) is raised by the call, as the compiled call raises it,
    and not later where lazy mode computes them.
    """
    from .program import realize_all
    args = [side.values[n] for n in case.passed] + ([s] if case.scalar else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = side.fn(*args)
            realize_all(dict(side.values, **(out if isinstance(out, dict) else {})))
            return out, None
        except Exception as e:  # noqa: BLE001 - compared across the two sides
            return None, e


def _observe(side: _Side, out) -> tuple[dict, frozenset]:
    """(entries of the returned values and the inputs, the sets of names sharing memory)."""
    import ember as em

    named = {f"input {n}": t for n, t in side.values.items()}
    named.update({f"returned {k}": v for k, v in (out or {}).items()})
    entries, storages = {}, {}
    for name, v in named.items():
        try:
            entries[name] = _entry(v, False)
        except Exception as e:  # noqa: BLE001 - reading the value raised
            entries[name] = f"{type(e).__name__}: {e}"
        if isinstance(v, em.Tensor):
            storages.setdefault(id(v._storage), set()).add(name)
    shared = frozenset(frozenset(g) for g in storages.values() if len(g) > 1)
    return entries, shared


def _compare(case: CompileCase, call: int, got: tuple, want: tuple) -> list[str]:
    """What differs between the compiled (`got`) and uncompiled (`want`) observations."""
    (g_entries, g_shared), (w_entries, w_shared) = got, want
    out = []
    for name, w in w_entries.items():
        g = g_entries.get(name)
        if isinstance(w, str) or isinstance(g, str) or w is None or g is None:
            if (w is None) != (g is None) or isinstance(w, str) != isinstance(g, str):
                out.append(f"call {call}: {name}: uncompiled {w!r}, compiled {g!r}")
            continue
        for cat, detail in diff_entry(w, g, case.low):
            if cat != "stride":  # NOTE: a computed result's layout is free (lazy mode too)
                out.append(f"call {call}: {name}: {cat}: uncompiled {detail}")
    for name in g_entries.keys() - w_entries.keys():
        out.append(f"call {call}: {name}: returned only compiled")
    if g_shared != w_shared:
        fmt = lambda s: sorted(sorted(g) for g in s)  # noqa: E731
        out.append(f"call {call}: memory shared: uncompiled {fmt(w_shared)}, "
                   f"compiled {fmt(g_shared)}")
    return out


def check_case(case: CompileCase) -> list[str]:
    """Every difference between the case run compiled and uncompiled (empty: none)."""
    import ember as em

    prev = em.is_eager()
    em.set_eager(False)
    try:
        return _check_case(case)
    finally:
        em.set_eager(prev)
        em.set_grad_enabled(True)


def _torch_first_call(case: CompileCase, want: tuple) -> list[str]:
    """What differs between torch's first call and ember's uncompiled one (`want`)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is the oracle where installed
        return []
    ns = namespace(torch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for st in case.setup:
                exec(st.code, ns)  # noqa: S102 - the fuzzer's own generated source
            S = _State()
            for n in case.captured:
                setattr(S, n, ns[n])
            exec(case.function_source(), ns)  # noqa: S102
            fn = ns["make"](torch, S)
            values = {n: ns[n] for n in case.inputs}
            args = [values[n] for n in case.passed] + ([SCALARS[0]] if case.scalar else [])
            out = fn(*args)
        except Exception as e:  # noqa: BLE001 - ember ran this call
            return [f"call 0: torch raised {type(e).__name__}: {str(e)[:120]}; ember ran"]
    named = {f"input {n}": t for n, t in values.items()}
    named.update({f"returned {k}": v for k, v in out.items()})
    diffs = []
    w_entries = want[0]
    groups: dict = {}
    for name, v in named.items():
        try:
            t = _entry(v, True)
        except Exception:  # noqa: BLE001 - torch cannot read it either
            continue
        e = w_entries.get(name)
        if t is None or isinstance(e, str):
            continue
        diffs += [f"call 0: {name}: {cat}: torch {detail}" for cat, detail in
                  diff_entry(t, e, case.low) if cat != "stride"]
        if isinstance(v, torch.Tensor) and v.numel():
            groups.setdefault(v.untyped_storage().data_ptr(), set()).add(name)
    shared = frozenset(frozenset(g) for g in groups.values() if len(g) > 1)
    counted = {n for g in groups.values() for n in g}  # NOTE: empty tensors share nothing
    mine = frozenset(k for g in want[1] if len(k := frozenset(g & counted)) > 1)
    if shared != mine:
        fmt = lambda s: sorted(sorted(g) for g in s)  # noqa: E731
        diffs.append(f"call 0: memory shared: torch {fmt(shared)}, ember {fmt(mine)}")
    return diffs


def _check_case(case: CompileCase, torch_too: bool = True) -> list[str]:
    calls = [(False, s) for s in SCALARS[:SAME_DATA_CALLS]] + [(True, SCALARS[-1])]
    sides = {c: _side(case, c, False) for c in (False, True)}
    kept = []
    for call, (other, s) in enumerate(calls):
        if other:
            # NOTE: the same function on new data: new arguments, and S's attributes
            # rebound to new tensors while the old ones live on (held here)
            for side in sides.values():
                kept.append(side.values)
                side.values = _inputs(case, True)
                for n in case.captured:
                    setattr(side.S, n, side.values[n])
        results = {c: _call(sides[c], case, s) for c in (False, True)}
        (w_out, w_err), (g_out, g_err) = results[False], results[True]
        if (w_err is None) != (g_err is None) or (
                w_err is not None and type(w_err) is not type(g_err)):
            return [f"call {call}: uncompiled {_fmt_err(w_err)}, compiled {_fmt_err(g_err)}"]
        if w_err is not None:  # NOTE: both raised alike; what a failed call left is not
            return []          # specified (lazy mode leaves the failing write pending)
        want = _observe(sides[False], w_out)
        diffs = _compare(case, call, _observe(sides[True], g_out), want)
        if not diffs and call == 0 and torch_too:
            diffs = _torch_first_call(case, want)
        if diffs:
            return diffs
    return []


def _fmt_err(e) -> str:
    return "ran" if e is None else f"raised {type(e).__name__}: {str(e)[:120]}"


# -- shrinking and the driver ----------------------------------------------------

def _category(diffs: list[str]) -> str:
    d = diffs[0]
    return re.sub(r"^call \d+: (input |returned )?\w*:? ?", "", d).split(":")[0][:40]


def shrink(case: CompileCase, diffs: list[str], budget_s: float = 20.0) -> CompileCase:
    """The case with as few body lines (and inputs passed or captured) as still fail."""
    want = _category(diffs)
    deadline = time.monotonic() + budget_s

    def fails(c):
        try:
            d = check_case(c)
        except Exception:  # noqa: BLE001 - a broken candidate does not count
            return False
        return bool(d) and _category(d) == want

    i = len(case.body) - 1
    while i >= 0 and time.monotonic() < deadline:
        body = _without(case.body, [i])
        if len(body) < len(case.body):
            cand = replace(case, body=body, scalar=case.scalar and any(
                "* s + 1" in s.code for s in body))
            if fails(cand):
                case = cand
                i = min(i, len(case.body)) - 1
                continue
        i -= 1
    for n in sorted(case.captured):
        if time.monotonic() > deadline:
            break
        cand = replace(case, captured=case.captured - {n})
        if fails(cand):
            case = cand
    return case


def fuzz(n: int, seed: int = 0, shrink_failures: bool = True, log=None) -> tuple[list, dict]:
    """Run `n` cases from `seed`; ([(case, shrunk case, differences)], counts)."""
    failures, stats = [], {"programs": 0, "skipped": 0, "failing": 0, "compiled": 0}
    for k in range(seed, seed + n):
        case = case_for(k)
        if case is None:
            stats["skipped"] += 1
            continue
        stats["programs"] += 1
        diffs = check_case(case)
        if not diffs:
            continue
        stats["failing"] += 1
        small = shrink(case, diffs) if shrink_failures else case
        failures.append((case, small, diffs))
        if log is not None:
            log(report(case, small, diffs))
    return failures, stats


def report(case: CompileCase, small: CompileCase, diffs: list[str]) -> str:
    head = (f"# seed {case.seed}: {len(case.body)} body lines, shrunk to {len(small.body)}; "
            f"captured {sorted(small.captured)}")
    again = check_case(small) or diffs
    return "\n".join([head, small.source(), "# compiled vs uncompiled:"]
                     + [f"#   {d}" for d in again[:6]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.compile", description=__doc__)
    p.add_argument("--programs", type=int, default=500, help="how many programs to run")
    p.add_argument("--seed", type=int, default=0, help="the first program's seed")
    p.add_argument("--no-shrink", action="store_true", help="print failures as drawn")
    args = p.parse_args(argv)
    os.environ.setdefault("EMBER_CACHE_DIR", tempfile.mkdtemp(prefix="ember-fuzz-"))
    start = time.monotonic()
    _, stats = fuzz(args.programs, args.seed, not args.no_shrink,
                    log=lambda text: print(text, flush=True))
    print(f"# {stats['programs']} programs from seed {args.seed} in "
          f"{time.monotonic() - start:.1f}s: {stats['failing']} failing, "
          f"{stats['skipped']} skipped (no input tensor)")
    return 1 if stats["failing"] else 0


if __name__ == "__main__":
    sys.exit(main())
