"""The table, the verdict lines, the JSON file and the optional plot.

Rates: a case with a byte count reports GB/s (the bytes a kernel must at least read
and write, divided by its time) as a share of copy bandwidth; a case with a FLOP
count reports TFLOP/s as a share of the best library matmul. NumPy eager runs on
the host, so on CUDA it is measured against the host's limits. Ratios are each
contender's time divided by the baseline's (ember's lazy path; NumPy's when ember
did not run): above 1 the baseline is faster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

from .cases import size_label
from .contenders import EMBER, NUMPY
from .limits import Limits
from .runner import CaseRun, Outcome, format_time

__all__ = ["baseline_of", "plot", "print_table", "rate", "to_json", "verdict"]

MISS, HIT = "ember (cache miss)", "ember (cache hit)"


def baseline_of(run: CaseRun) -> str | None:
    """The contender the others are compared with; None for cases reported alone."""
    if run.case.custom and EMBER not in run.case.custom:
        return None  # NOTE: a case whose own contenders include "ember" compares with it
    for name in (EMBER, NUMPY):
        if run.outcomes.get(name) and run.outcomes[name].status == "ok":
            return name
    return None


def rate(run: CaseRun, name: str, limits: Limits) -> tuple[float, str, float | None, str] | None:
    """(rate, unit, share of the limit, the limit's name) of an ok contender, if the case has
    work."""
    outcome = run.outcomes[name]
    if run.case.work is None or outcome.status != "ok":
        return None
    kind, amount = run.case.work(run.size)
    on_device = limits.device == "cuda" and name != NUMPY
    if kind == "bytes":
        value, unit = amount / outcome.median / 1e9, "GB/s"
        limit, limit_name = limits.bandwidth(on_device)
    else:
        value, unit = amount / outcome.median / 1e12, "TFLOP/s"
        limit, limit_name = limits.matmul(on_device)
    return value, unit, (value / limit if limit else None), limit_name


def _ratio(ratio: float, name: str) -> str:
    """'2.31x faster than numpy eager' for ratio 2.31, '1.25x slower than ...' for 0.8."""
    factor, word = (ratio, "faster") if ratio >= 1 else (1 / ratio, "slower")
    digits = 2 if factor < 10 else 0
    return f"{factor:.{digits}f}x {word} than {name}"


def verdict(run: CaseRun, limits: Limits) -> str:
    """One line: how the baseline compares with every other contender, and its share."""
    ok = {n: o for n, o in run.outcomes.items() if o.status == "ok"}
    bad = [f"{n} {o.status}" for n, o in run.outcomes.items() if o.status in ("disagrees", "error")]
    base = baseline_of(run)
    per = "" if run.case.unit == "call" else f" per {run.case.unit}"
    if base is None:
        parts = [f"{n} {format_time(o.median)}" for n, o in ok.items()]
        if MISS in ok and HIT in ok:
            cost = ok[MISS].median - ok[HIT].median
            parts.append(f"compiling costs about {format_time(cost)}" if cost > 0 else
                         "a cache miss costs no more than a hit (is nothing compiled or cached?)")
        text = ", ".join(parts) or "nothing ran"
    else:
        parts = [_ratio(o.median / ok[base].median, n) for n, o in ok.items() if n != base]
        text = f"{base} {format_time(ok[base].median)}{per}"
        text += ": " + ", ".join(parts) if parts else ""
        if run.case.group == "overhead" and base != NUMPY and NUMPY in ok:
            extra = ok[base].median - ok[NUMPY].median
            text += f"; {format_time(extra)} above numpy eager" if extra > 0 else ""
        achieved = rate(run, base, limits)
        if achieved and achieved[2] is not None:
            text += f", {achieved[2]:.0%} of {achieved[3]}"
    if EMBER not in ok and base is not None:
        text += " (ember did not run)"
    return text + ("; " + ", ".join(bad) if bad else "")


def header(limits: Limits, versions: dict[str, str | None]) -> str:
    threads = ", ".join(f"{t} thread{'s' if t > 1 else ''} {g:.1f}"
                        for t, g in limits.copy_gbs_by_threads.items())
    llc = f", last-level cache {limits.llc_bytes >> 20} MiB" if limits.llc_bytes else ""
    first = (f"== device {limits.device}: {limits.cpu_count} cores; copy bandwidth "
             f"{limits.copy_gbs:.1f} GB/s ({threads}; arrays of {limits.copy_bytes >> 20} MiB"
             f"{llc}); best matmul "
             f"{(limits.matmul_tflops or 0) * 1e3:.0f} GFLOP/s ({limits.matmul_source})")
    lines = [first]
    if limits.device_copy_gbs is not None:
        lines.append(f"   device copy bandwidth {limits.device_copy_gbs:.0f} GB/s; best device "
                     f"matmul {limits.device_matmul_tflops:.1f} TFLOP/s "
                     f"({limits.device_matmul_source})")
    lines.append("   " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    return "\n".join(lines)


COLUMNS = f"{'case':<24}{'contender':<26}{'median':>10}{'IQR':>8}{'rate':>15}" \
          f"{'of limit':>10}{'vs base':>9}"


def _row(run: CaseRun, name: str, o: Outcome, limits: Limits, base: str | None) -> str:
    if o.status != "ok":
        return f"{'':<24}{name:<26}  {o.status}: {o.reason}"
    spread = (o.stat(75) - o.stat(25)) / 2 / o.median if o.median else 0.0
    achieved = rate(run, name, limits)
    rate_text = f"{achieved[0]:.3g} {achieved[1]}" if achieved else ""
    share = f"{achieved[2]:.0%}" if achieved and achieved[2] is not None else ""
    ratio = f"{o.median / run.outcomes[base].median:.2f}" if base else ""
    return (f"{'':<24}{name:<26}{format_time(o.median):>10}{f'±{spread:.0%}':>8}"
            f"{rate_text:>15}{share:>10}{ratio:>9}")


def print_table(runs: list[CaseRun], limits: Limits, versions: dict[str, str | None],
                out: TextIO, notes: Sequence[str] = ()) -> None:
    """The table for this run's device, with a verdict line after every case and size."""
    print(header(limits, versions), file=out)
    for note in notes:
        print(f"   note: {note}", file=out)
    print("   times are medians per call (per step/op where the case says so); "
          "IQR is half the interquartile range; 'vs base' is time / the baseline's time",
          file=out)
    print(COLUMNS, file=out)
    for run in runs:
        per = "" if run.case.unit == "call" else f" (per {run.case.unit})"
        print(f"{run.label + per:<24}", file=out)
        base = baseline_of(run)
        for name, outcome in run.outcomes.items():
            print(_row(run, name, outcome, limits, base), file=out)
        print(f"  -> {verdict(run, limits)}", file=out)


def _outcome_json(run: CaseRun, o: Outcome, limits: Limits, base: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"status": o.status}
    if o.reason:
        data["reason"] = o.reason
    if o.deviation is not None:
        data["deviation"] = o.deviation
    if o.status == "ok":
        data.update(median_s=o.median, q1_s=o.stat(25), q3_s=o.stat(75), min_s=min(o.times),
                    max_s=max(o.times), times_s=o.times, inner=o.inner)
        achieved = rate(run, o.contender, limits)
        if achieved:
            data.update(rate=achieved[0], rate_unit=achieved[1], share=achieved[2],
                        limit=achieved[3])
        if base:
            data["vs_baseline"] = o.median / run.outcomes[base].median
    return data


def to_json(runs: list[CaseRun], limits: Limits, meta: dict[str, Any],
            contenders: dict[str, str | None], notes: list[str]) -> dict[str, Any]:
    """Everything the run measured, as plain JSON data."""
    cases = []
    for run in runs:
        base = baseline_of(run)
        work = run.case.work(run.size) if run.case.work else None
        cases.append({
            "case": run.case.name, "group": run.case.group, "size": size_label(run.size),
            "dims": list(run.size) if isinstance(run.size, tuple) else [run.size],
            "unit": run.case.unit, "per_call": run.case.per_call, "note": run.case.note,
            "work": {"kind": work[0], "amount": work[1]} if work else None,
            "baseline": base, "verdict": verdict(run, limits), "seconds": run.seconds,
            "threads": run.threads,
            "results": {n: _outcome_json(run, o, limits, base) for n, o in run.outcomes.items()},
        })
    return {"meta": meta, "limits": limits.to_json(), "contenders": contenders,
            "notes": notes, "cases": cases}


def write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def plot(runs: list[CaseRun], path: str, title: str = "ember benchmarks") -> str:
    """Draw every contender's time relative to the baseline's, under `title` (the machine
    and the date); returns a one-line message."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot: matplotlib is not installed (pip install matplotlib); no plot written"
    rows = [(run, baseline_of(run)) for run in runs]
    rows = [(run, base) for run, base in rows if base]
    names = sorted({n for run, _ in rows for n, o in run.outcomes.items() if o.status == "ok"})
    # NOTE: a bar group per case and a fixed width per group keep labels readable at any
    # number of cases; the legend goes outside the axes so it never hides bars.
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(rows)), 5.5))
    ax.set_title(title, fontsize=9)
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        xs, ys = [], []
        for i, (run, base) in enumerate(rows):
            o = run.outcomes.get(name)
            if o and o.status == "ok":
                xs.append(i + k * width)
                ys.append(o.median / run.outcomes[base].median)
        ax.bar(xs, ys, width, label=name)
    ax.set_yscale("log")
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
    ax.set_xticklabels([run.label for run, _ in rows], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("time / baseline time (above 1: baseline faster)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot written to {path}"
