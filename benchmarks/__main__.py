"""The command line: ``python -m ember.benchmarks`` or ``ember-bench``.

    python -m ember.benchmarks --quick              # a smoke run, under a minute on a CPU
    python -m ember.benchmarks --filter softmax --json out.json
    python -m ember.benchmarks --device cuda        # the GPU run: benchmarks/gpu.py
    python -m ember.benchmarks --device cuda --dry-run

Progress goes to stderr, the table to stdout. Unless EMBER_CACHE_DIR is set, ember's
disk cache lives in a temporary folder for the run, so that no earlier run's cache
turns a compile into a load (and no run leaves entries in the user's cache).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from . import limits as limits_mod
from .cases import select, size_label
from .contenders import load_libraries, plan
from .report import plot, print_table, to_json, write_json
from .runner import CaseRun, Settings, run_case, summary

__all__ = ["main", "parse_args"]


def _positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` above zero, or a message saying what was wrong."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value
    return parse


def _writable_file(path: str) -> str:
    """An argparse type: a file path whose folder exists and can be written, checked
    before the run instead of after it."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"the folder {folder} is not writable")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{path} is a folder, not a file")
    return path


class _DefaultsHelp(argparse.HelpFormatter):
    """Help text that ends with the flag's default, unless the text already says it or
    the flag is a switch."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ember.benchmarks", description=(
        "ember's kernel benchmark suite: every case with every available contender, "
        "against the machine's limits."), formatter_class=_DefaultsHelp)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the cases run")
    p.add_argument("--quick", action="store_true",
                   help="smallest size of every case, fewer repeats, no torch.compile")
    p.add_argument("--filter", metavar="NAME",
                   help="only cases whose name contains NAME or matches it as a regex "
                        "(default: every case)")
    p.add_argument("--json", metavar="PATH", type=_writable_file,
                   help="write every measurement to PATH (default: none written)")
    p.add_argument("--plot", metavar="PATH", type=_writable_file,
                   help="draw a PNG (needs matplotlib; default: none drawn)")
    p.add_argument("--repeats", type=_positive(int),
                   help="timed samples per contender (default: 5 with --quick, else 7)")
    p.add_argument("--min-sample", type=_positive(float), metavar="SECONDS",
                   help="each sample repeats the call until it lasts this long "
                        "(default: 0.005 with --quick, else 0.02)")
    p.add_argument("--torch-threads", type=_positive(int), metavar="N",
                   help="torch's intra-op threads (default: torch's own, or 1 where its "
                        "threads are found starved)")
    p.add_argument("--list", action="store_true", help="list the cases and their sizes")
    p.add_argument("--strict", action="store_true",
                   help="exit with 1 if a contender disagrees with NumPy or fails "
                        "(default: exit 0)")
    p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failures")
    p.add_argument("--dry-run", action="store_true",
                   help="with --device cuda: list the GPU tests and cases that would run")
    p.add_argument("--no-tests", action="store_true",
                   help="with --device cuda: skip the GPU test subset")
    return p.parse_args(argv)


def _progress(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings(quick=args.quick, repeats=5 if args.quick else 7,
                        min_sample_s=0.005 if args.quick else 0.02,
                        max_case_s=10.0 if args.quick else 60.0, verbose=args.verbose)
    if args.repeats:
        settings.repeats = args.repeats
    if args.min_sample:
        settings.min_sample_s = args.min_sample
    return settings


def main(argv: list[str] | None = None) -> int:
    """Run the suite; returns the process exit code."""
    args = parse_args(argv)
    if args.device == "cuda":
        # NOTE: the GPU run is its own script (benchmarks/gpu.py): the Triton back end's
        # tests on the GPU, then the GPU cases against torch eager and torch.compile
        from . import gpu
        if args.dry_run:
            print("\n".join(gpu.plan_lines()))
            return 0
        return gpu.run(tests=not args.no_tests, compiled=not args.quick)
    cases = select(args.filter)
    if args.list:
        for case in cases:
            print(f"{case.name:<20} {case.group:<14} "
                  f"{', '.join(size_label(s) for s in case.sizes):<40} {case.note}")
        return 0
    if not cases:
        print(f"no case matches {args.filter!r}; try --list", file=sys.stderr)
        return 2
    cache_dir = None
    if "EMBER_CACHE_DIR" not in os.environ:
        cache_dir = tempfile.mkdtemp(prefix="ember-bench-cache-")
        os.environ["EMBER_CACHE_DIR"] = cache_dir
    try:
        return _run(args, cases)
    finally:
        if cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)


def _run(args: argparse.Namespace, cases: list) -> int:
    started = time.perf_counter()
    libs = load_libraries(args.device, args.quick, args.torch_threads)
    if args.device == "cuda" and (libs.torch is None or not libs.torch.cuda.is_available()):
        print("--device cuda needs torch with a CUDA device, and none was found", file=sys.stderr)
        return 2
    contenders = plan(libs)
    notes = list(libs.notes)
    load = _load_average()
    if load is not None and load >= max(1.0, (os.cpu_count() or 1) / 2):
        notes.append(f"the machine is busy (load average {load:.1f} on {os.cpu_count()} cores "
                     "before the run): other processes share the cores, timings are noisy")
    notes += [f"{n}: {why}" for n, why in contenders.items() if why and n.startswith("torch")]
    for note in notes:
        _progress(f"note: {note}")
    _progress("measuring the machine's limits ...", end=" ")
    limits = limits_mod.measure(args.device, args.quick, libs.torch)
    _progress(f"copy {limits.copy_gbs:.1f} GB/s, matmul {(limits.matmul_tflops or 0) * 1e3:.0f} "
              f"GFLOP/s")
    settings = _settings(args)
    jobs = [(case, size) for case in cases
            for size in (case.sizes[:1] if args.quick else case.sizes)]
    runs: list[CaseRun] = []
    for i, (case, size) in enumerate(jobs, 1):
        for note in libs.watch_threads():
            notes.append(note)
            _progress(f"note: {note}")
        _progress(f"[{i}/{len(jobs)}] {case.name} {size_label(size)} ...", end=" ")
        run = run_case(case, size, contenders, libs, settings)
        runs.append(run)
        _progress(f"{run.seconds:.1f} s: {summary(run)}")
        for note in libs.notes:  # a case's contenders may add notes (adam_step's compiles)
            if note not in notes:
                notes.append(note)
                _progress(f"note: {note}")
    print_table(runs, limits, libs.versions(), sys.stdout, notes)
    if args.json:
        meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                "device": args.device, "quick": args.quick, "filter": args.filter,
                "repeats": settings.repeats, "min_sample_s": settings.min_sample_s,
                "cpu_count": os.cpu_count(), "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "python": platform.python_version(), "versions": libs.versions(),
                "threads": libs.threads(),
                "load_average": {"start": load, "end": _load_average()},
                "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time()}
        write_json(args.json, to_json(runs, limits, meta, contenders, notes))
        _progress(f"measurements written to {args.json}")
    if args.plot:
        title = (f"ember benchmarks, {args.device}: {platform.processor() or platform.machine()}, "
                 f"{os.cpu_count()} cores, {datetime.date.today().isoformat()}")
        _progress(plot(runs, args.plot, title))
    _progress(f"done in {time.perf_counter() - started:.0f} s")
    failed = any(o.status in ("disagrees", "error") for r in runs for o in r.outcomes.values())
    return 1 if args.strict and failed else 0


# NOTE: OpenBLAS's worker threads spin for about 2^28 cycles after each BLAS call. On a
# machine with few cores that spinning thread shares a core with torch's OpenMP worker,
# and every parallel torch op then waits for a scheduler time slice: a 256x256 sum took
# 6 ms instead of 8 us on a 2-core machine. 2^4 cycles keeps NumPy's matmul as fast and
# the contenders out of each other's way. OpenBLAS reads the variable when NumPy loads,
# which importing this package has already done, so the command line sets it and starts
# itself again once; importing the package changes no environment variable.
OPENBLAS_TIMEOUT = "4"


def cli(argv: list[str] | None = None) -> int:
    """The command line's entry: `main` in a process whose OpenBLAS threads stop spinning."""
    argv = sys.argv[1:] if argv is None else argv
    if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
        env = {**os.environ, "OPENBLAS_THREAD_TIMEOUT": OPENBLAS_TIMEOUT}
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "ember.benchmarks", *argv], env)
    return main(argv)


if __name__ == "__main__":
    sys.exit(cli())
