"""Running one case at one size: check once, warm up, time interleaved repeats.

For each contender: set it up, run it once and compare its result with NumPy's (a
contender that disagrees is reported with its deviation and not timed), run it once
more to warm up, then time one call to choose how many calls a sample holds (so that
a sample lasts at least `Settings.min_sample_s`). Then `Settings.repeats` rounds (fewer,
but at least 3, where they would take more than `Settings.max_case_s`), each
timing one sample of every contender, in an order shuffled every round (seeded) so
that no contender always runs right after another. Each sample starts with one
untimed call: the first call after another library ran pays for that library's
threads going idle and for cold caches (measured here: a softmax timed right after
torch's took twice as long), which is not the contender's own cost. A time is per
call, or per step/op for cases that do several in a call (`Case.per_call`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .cases import Case, Size, size_label
from .contenders import TORCH_COMPILE, Libraries, Runner, Unavailable, make_runner, numpy_runner

__all__ = [
    "CaseRun",
    "Outcome",
    "Settings",
    "contenders_for",
    "deviation",
    "format_time",
    "run_case",
    "summary",
]


@dataclass
class Settings:
    quick: bool = False
    repeats: int = 7
    min_sample_s: float = 0.02
    max_case_s: float = 60.0  # fewer repeats (never under 3) when a case would take longer
    max_inner: int = 100_000
    verbose: bool = False


@dataclass
class Outcome:
    """What happened to one contender: status ok | disagrees | error | unavailable | skipped."""

    contender: str
    status: str
    reason: str = ""
    deviation: float | None = None  # max |out - numpy| / max(1, max |numpy|)
    times: list[float] = field(default_factory=list)  # seconds per call/step/op, per repeat
    inner: int = 0  # calls per sample
    once: float = 0.0  # seconds of the calibration call

    def stat(self, q: float) -> float:
        return float(np.percentile(self.times, q))

    @property
    def median(self) -> float:
        return self.stat(50)


@dataclass
class CaseRun:
    case: Case
    size: Size
    outcomes: dict[str, Outcome]
    seconds: float = 0.0  # wall time spent on this case and size
    threads: dict[str, int] = field(default_factory=dict)  # thread pools' sizes while it ran

    @property
    def label(self) -> str:
        return f"{self.case.name} {size_label(self.size)}"


def deviation(out: list[np.ndarray], ref: list[np.ndarray]) -> tuple[float, str]:
    """The worst normalised deviation of `out` from `ref`, and what was wrong if not a number."""
    if len(out) != len(ref):
        return math.inf, f"{len(out)} outputs instead of {len(ref)}"
    worst = 0.0
    for i, (o, r) in enumerate(zip(out, ref)):
        o, r = np.asarray(o, dtype=np.float64), np.asarray(r, dtype=np.float64)
        if o.shape != r.shape:
            return math.inf, f"output {i} has shape {o.shape} instead of {r.shape}"
        if o.size == 0:
            continue
        same_nan = np.isnan(o) & np.isnan(r)
        diff = np.where(same_nan, 0.0, np.abs(o - r))
        worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max())
                    / max(1.0, float(np.abs(np.nan_to_num(r)).max())))
    return worst, ""


def contenders_for(case: Case, plan: dict[str, str | None]) -> dict[str, str | None]:
    """The contenders of `case`, each with None or the reason it does not run."""
    names = plan if case.only is None else {n: plan[n] for n in case.only if n in plan}
    return {**names, **{name: None for name in case.custom}}


def _sample(runner: Runner, inner: int, settle: bool = False) -> float:
    """Seconds for `inner` calls (after one untimed call when `settle`)."""
    if settle:
        runner.run()
    if runner.self_timed:
        return sum(runner.run() for _ in range(inner))
    start = time.perf_counter()
    for _ in range(inner):
        runner.run()
    return time.perf_counter() - start


def _fail(name: str, exc: BaseException, settings: Settings) -> Outcome:
    if settings.verbose:
        import traceback

        traceback.print_exception(exc)
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:200]
    if isinstance(exc, Unavailable):
        status = "skipped" if str(exc).startswith("skipped") else "unavailable"
        return Outcome(name, status, str(exc))
    if name == TORCH_COMPILE:  # a torch.compile that cannot compile here is unavailable
        return Outcome(name, "unavailable", f"torch.compile failed here: {text}")
    return Outcome(name, "error", text)


def _prepare(case: Case, inputs: dict[str, np.ndarray], names: dict[str, str | None],
             libs: Libraries, settings: Settings) -> tuple[dict[str, Outcome], dict[str, Runner]]:
    """Set up and check every contender; returns all outcomes and the runners to time."""
    reference = numpy_runner(case, inputs).result()
    outcomes: dict[str, Outcome] = {}
    runners: dict[str, Runner] = {}
    for name, reason in names.items():
        if reason is not None:
            status = "skipped" if reason.startswith("skipped") else "unavailable"
            outcomes[name] = Outcome(name, status, reason)
            continue
        try:
            runner = make_runner(name, case, inputs, libs)
            dev, what = deviation(runner.result(), reference)
        except Exception as exc:  # noqa: BLE001 - report any failure, keep benchmarking
            outcomes[name] = _fail(name, exc, settings)
            continue
        if not dev <= case.tol:
            why = what or f"max deviation {dev:.3g} from numpy (tolerance {case.tol:g})"
            outcomes[name] = Outcome(name, "disagrees", why, deviation=dev)
            continue
        outcomes[name] = Outcome(name, "ok", deviation=dev)
        runners[name] = runner
    return outcomes, runners


def run_case(case: Case, size: Size, plan: dict[str, str | None], libs: Libraries,
             settings: Settings) -> CaseRun:
    """Check and time every contender of `case` at `size`."""
    start = time.perf_counter()
    inputs = case.build(size, np.random.default_rng(0))
    outcomes, runners = _prepare(case, inputs, contenders_for(case, plan), libs, settings)
    for name, runner in list(runners.items()):
        try:
            runner.run()  # warm-up
            once = max(_sample(runner, 1), 1e-7)
        except Exception as exc:  # noqa: BLE001
            outcomes[name] = _fail(name, exc, settings)
            del runners[name]
            continue
        outcomes[name].once = once
        inner = 1 if runner.self_timed else math.ceil(settings.min_sample_s / once)
        outcomes[name].inner = max(1, min(settings.max_inner, inner))
    order = list(runners)
    round_s = sum(outcomes[n].inner * outcomes[n].once for n in order)
    repeats = settings.repeats
    if round_s * repeats > settings.max_case_s:
        repeats = max(3, int(settings.max_case_s / max(round_s, 1e-9)))
    shuffle = np.random.default_rng(0).permutation
    for _ in range(repeats):
        for i in shuffle(len(order)):
            name = order[i]
            if name not in runners:
                continue
            outcome = outcomes[name]
            try:
                seconds = _sample(runners[name], outcome.inner, settle=True)
            except Exception as exc:  # noqa: BLE001
                outcomes[name] = _fail(name, exc, settings)
                del runners[name]
                continue
            outcome.times.append(seconds / outcome.inner / case.per_call)
    return CaseRun(case, size, outcomes, time.perf_counter() - start, libs.threads())


def summary(run: CaseRun) -> str:
    """One line for the progress display."""
    parts = []
    for name, o in run.outcomes.items():
        if o.status == "ok":
            parts.append(f"{name} {format_time(o.median)}")
        elif o.status in ("disagrees", "error"):
            parts.append(f"{name} {o.status.upper()}")
    return ", ".join(parts)


def format_time(seconds: float) -> str:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"

