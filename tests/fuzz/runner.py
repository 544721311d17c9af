"""Run fuzz programs one after another, compare, shrink failures, print them.

`fuzz(n, seed)` draws programs `seed, seed+1, ...` and runs each as torch, as ember
lazy and as ember eager in this one process, never clearing a cache between them
(a reuse bug, such as a backward plan of one program replayed in the next, shows
only in sequence). A failing program shrinks (`shrink`) to a short one that still
fails the same way, with the program before it prepended when it fails only after
it, and prints as a runnable snippet (`Failure.report`).

`KNOWN_GAPS` names the known ember bugs the generator steers around, one category
per switch; empty means "generate everything". See `GAP_DOC` for what each turns
off. The CI lane runs with the set as it stands here; when the fixes land, the
set is emptied and the lane must still pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from .generate import generate
from .program import Mismatch, Program, Stmt, compare, realize_all, run

# What each known-bug category switch leaves out: of the generated programs, or (the
# last two) of the comparison. "issue" marks bugs already reported, "new" the fuzzer's.
GAP_DOC = {
    # reported
    "plan_key": "backward() never rebuilds an earlier line's expression (a stale plan replays)",
    "sigmoid_at_zero": "sigmoid is drawn as tanh: its gradient at 0 is 0 (torch 0.25)",
    "grad_through_view_write": "no tensor that requires grad is written into a view",
    "nan_grad": "nothing requires grad in programs with NaN/inf data; no NaN scalars; clamp, "
                "amax/amin/max/min and norm only of finite values (torch's NaN gradients)",
    "numpy_write": "no writes to NumPy arrays (computed values reused across the write)",
    "numpy_inplace": "no in-place op on a tensor sharing NumPy memory (not written through)",
    "overlap_inplace": "torch's overlapping in-place errors are not kept as lines to reject",
    "setitem_broadcast": "t[i] = v: v has no more dims than the region; t is not expanded",
    "saved_too_much": "(comparison) ember's false 'modified by an inplace operation' skips",
    "zero_grad_none": "(comparison) a None gradient where torch's is all zeros is ignored",
    "int_div_zero": "torch's integer ZeroDivisionError is not kept as a line to reject",
    "var_correction": "var/std are drawn with correction=0 (N <= correction: not nan/inf)",
    "layout": "(comparison) strides of computed results are not compared",
    "clamp_ties": "clamp bounds are never values the data holds (gradient at a bound)",
    "softmax_special": "softmax/log_softmax/logsumexp only of finite inputs",
    # found by this fuzzer
    "median": "median is not drawn (integer dtype, NaN, strides of median(dim))",
    "as_tensor_copies": "as_tensor(ndarray) is drawn as from_numpy (ember copies)",
    "numpy_view_readonly": "no .numpy() of a view (ember's array is read-only)",
    "missed_inplace_check": "torch's 'modified by an inplace operation' errors are not kept",
    "copy_requires_grad": "no copy_/in-place from a tensor requiring grad into int/bool/empty",
    "retain_grad_view": "retain_grad() is not called on views (ember reports the base's)",
    "second_backward_shared": "one backward() per program (a second one sharing nodes raises)",
    "full_slice_is_self": "no x[:] / x[...] / x[0:n] of a tensor requiring grad (ember: x)",
    "read_then_inplace": "no in-place op on a tensor after a line read its values (.numpy(), "
                         "a mask...): results pending on it see the write",
    "detach_view_inplace": "no in-place op on x.T.detach() and such (ember: 'a view of a leaf')",
    "overwritten_grad_nan": "no copy_/fill_/zero_/t[i] = v on tensors that require grad "
                            "(torch's 0 * NaN gradient of the overwritten value)",
    "cat_empty_dtype": "no cat/stack of empty tensors of different dtypes (ember: no promotion)",
    "pow_kinks": "x ** tensor only where x holds no 0 (the gradient at 0 ** e)",
    "exp2_inexact": "exp2 is drawn as exp (ember's exp2(3.0) is 7.999999999999998)",
    "empty_view_offset": "no empty views (reading one whose offset is at the end raises)",
    "repr_wrap": "(comparison) repr differing only in line wrapping is accepted",
    "signed_zero": "no -0.0 data, rsqrt, float // or %, float cumsum (rsqrt(-0.0), 3 // -0.0, "
                   "relu_(-0.0), a cumsum from -0.0: the wrong signed zero or inf)",
}

# Known categories turned off for the CI lane: none. Every category GAP_DOC names was
# fixed; the switches stay, to steer around a category found again while it is fixed.
KNOWN_GAPS: frozenset = frozenset()


def check(prog: Program, gaps=frozenset()) -> tuple[list[Mismatch], bool]:
    """(mismatches, valid): run `prog` as torch, ember lazy and ember eager.

    `valid` is False when torch itself does not run the program as drawn (a line
    that should raise runs, or one that should run raises): such a program says
    nothing about ember.
    """
    import torch

    import ember as em

    ref = run(prog, torch)
    want = {i for i, s in enumerate(prog.stmts) if s.expect_error}
    if ref.aborted is not None or set(ref.errors) != want:
        return [], False
    out = []
    for mode in ("lazy", "eager"):
        prev = em.is_eager()
        em.set_eager(mode == "eager")
        try:
            got = run(prog, em, realize_all if mode == "lazy" else None)
            out += [m for m in compare(prog, ref, got, mode) if m.tag not in gaps]
        finally:
            em.set_eager(prev)
            em.set_grad_enabled(True)
    return out, True


@dataclass
class Failure:
    """A failing program, its shrunk form and what differed."""

    seed: int
    program: Program
    mismatches: list
    shrunk: Program | None = None
    shrunk_mismatches: list = field(default_factory=list)
    needs_previous: bool = False
    fresh: bool | None = None     # whether the snippet fails in a new process (None: untried)

    def signature(self) -> tuple:
        m = self.mismatches[0]
        return m.signature()

    def report(self) -> str:
        """The shrunk program as a runnable snippet, and torch's vs ember's results."""
        prog = self.shrunk or self.program
        ms = self.shrunk_mismatches or self.mismatches
        note = (" (fails only after the program before it, prepended here)"
                if self.needs_previous else "")
        if self.fresh is not None:
            note += ("; fails in a new process" if self.fresh else
                     "; passes in a new process: it needs caches that earlier programs left")
        names = list(dict.fromkeys(m.where for m in ms if not m.where.startswith(("line",
                                                                                "reading"))))
        lines = [f"# seed {self.seed}: {len(self.program)} lines, shrunk to {len(prog)}{note}",
                 prog.source(names), "# torch vs ember:"]
        lines += [f"#   {m}" for m in ms[:6]]
        return "\n".join(lines)


def _fails_like(prog: Program, sig: tuple, gaps=frozenset()) -> list | None:
    ms, valid = check(prog, gaps)
    if not valid:
        return None
    same = [m for m in ms if m.signature() == sig]
    return same or None


def shrink(prog: Program, sig: tuple, budget_s: float = 20.0, gaps=frozenset(),
           fails=None) -> tuple[Program, list]:
    """Delete statements (chunks, then single lines) while `prog` still fails as `sig`.

    `fails(prog, sig, gaps)` decides (default: `check` in this process).
    """
    fails = fails or _fails_like
    start = time.monotonic()
    best = prog
    ms = fails(prog, sig, gaps) or []
    chunk = max(1, len(best) // 2)
    while chunk >= 1 and time.monotonic() - start < budget_s:
        i = 0
        changed = False
        while i < len(best) and time.monotonic() - start < budget_s:
            cand = Program(best.stmts[:i] + best.stmts[i + chunk:])
            got = fails(cand, sig, gaps) if len(cand) else None
            if got:
                best, ms, changed = cand, got, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return best, ms


def check_fresh(prog: Program, gaps=frozenset(), timeout: float = 120.0) -> list | None:
    """`check(prog)` in a new Python process (no cache warmed by earlier programs).

    The mismatches, or None when torch does not run the program as drawn.
    """
    payload = json.dumps({"gaps": sorted(gaps), "stmts": [asdict(st) for st in prog.stmts]})
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from fuzz.runner import _check_stdin; _check_stdin()")
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code, tests_dir], input=payload, text=True,
                          capture_output=True, timeout=timeout, env=_child_env())
    if done.returncode != 0:
        raise RuntimeError(f"the fresh fuzz process failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return None if out is None else [Mismatch(**m) for m in out]


def _child_env() -> dict:
    """This process's environment, with the ember options it runs under made explicit.

    NOTE: ember turns its graph verifier on when pytest is imported; the new process
    must verify exactly when this one does, or a verifier error will not reproduce.
    """
    from ember.runtime.config import options
    env = dict(os.environ)
    env["EMBER_VERIFY"] = "1" if options.verify else "0"
    env["EMBER_CACHE_DIR"] = options.cache_dir
    return env


def _check_stdin() -> None:
    """check_fresh's other end: read a program as JSON, print its mismatches as JSON."""
    data = json.loads(sys.stdin.read())
    prog = Program([Stmt(**{k: tuple(v) if isinstance(v, list) else v for k, v in st.items()})
                    for st in data["stmts"]])
    ms, valid = check(prog, frozenset(data["gaps"]))
    print(json.dumps([asdict(m) for m in ms] if valid else None))


def _fails_fresh(prog: Program, sig: tuple, gaps=frozenset()) -> list | None:
    ms = check_fresh(prog, gaps)
    same = [m for m in ms or [] if m.signature() == sig]
    return same or None


def investigate(seed: int, prog: Program, mismatches: list, previous: Program | None,
                shrink_s: float = 20.0, gaps=frozenset(), fresh_s: float = 0.0) -> Failure:
    """Shrink a failure found in sequence to a program that fails the same way.

    In this process first (alone, else after `previous`); with `fresh_s` > 0 the result
    is then run in a new process, and where it passes there (it needed caches that
    earlier programs left), the program is shrunk again with a new process per try,
    for at most `fresh_s` seconds. `Failure.fresh` says whether the snippet printed
    fails on its own.
    """
    f = Failure(seed, prog, mismatches)
    sig = f.signature()
    if _fails_like(prog, sig, gaps):
        f.shrunk, f.shrunk_mismatches = shrink(prog, sig, shrink_s, gaps)
    elif previous is not None:
        both = Program([st.renamed("p") for st in previous.stmts] + prog.stmts)
        if _fails_like(both, sig, gaps):
            f.needs_previous = True
            f.shrunk, f.shrunk_mismatches = shrink(both, sig, shrink_s, gaps)
    if fresh_s <= 0:
        return f
    if f.shrunk is not None and _fails_fresh(f.shrunk, sig, gaps):
        f.fresh = True
        return f
    for cand in (prog, Program([st.renamed("p") for st in (previous.stmts if previous else [])]
                               + prog.stmts)):
        if _fails_fresh(cand, sig, gaps):
            f.shrunk, f.shrunk_mismatches = shrink(cand, sig, fresh_s, gaps, _fails_fresh)
            f.needs_previous = cand is not prog
            f.fresh = True
            return f
    f.fresh = False
    return f


def fuzz(n: int, seed: int = 0, gaps=None, shrink_failures: bool = True,
         max_failures: int = 50, per_signature: int = 2, log=None, shrink_s: float = 20.0,
         fresh_s: float = 0.0):
    """Run `n` programs from `seed`; returns (failures, stats).

    Failures are shrunk (see `investigate`; `fresh_s` > 0 checks them in a new
    process), at most `per_signature` for each (mode, category) and `max_failures`
    in all; the rest are counted in stats["unshrunk"].
    """
    gaps = KNOWN_GAPS if gaps is None else frozenset(gaps)
    failures: list[Failure] = []
    seen: dict = {}
    stats = {"programs": 0, "invalid": 0, "failing": 0, "unshrunk": 0, "lines": 0}
    previous = None
    for s in range(seed, seed + n):
        prog = generate(s, gaps)
        ms, valid = check(prog, gaps)
        stats["programs"] += 1
        stats["lines"] += len(prog)
        if not valid:
            stats["invalid"] += 1
            continue
        if ms:
            stats["failing"] += 1
            sig = ms[0].signature()
            if seen.get(sig, 0) < per_signature and len(failures) < max_failures:
                seen[sig] = seen.get(sig, 0) + 1
                f = (investigate(s, prog, ms, previous, shrink_s, gaps, fresh_s)
                     if shrink_failures
                     else Failure(s, prog, ms))
                failures.append(f)
                if log:
                    log(f.report() + "\n")
            else:
                stats["unshrunk"] += 1
        previous = prog
    return failures, stats
