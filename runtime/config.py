"""ember's options, read from the environment in this one place.

`options` holds the environment's options, read once at import; everything else
reads it rather than the environment. It carries no mode: grad mode, eager mode,
em.compile's trace and the random generator are per-thread state in
runtime/context.py. `EMBER_EAGER=1` makes eager mode the default every thread
starts with (`options.eager_default`; `em.set_eager` switches the calling
thread), `EMBER_DEBUG=1|2` prints kernels and timings (2: graphs and generated
source too), `EMBER_CACHE_DIR` / `EMBER_CACHE=0` steer the disk cache (an empty
`EMBER_CACHE_DIR` means the default, `~/.cache/ember`), `EMBER_BACKEND`
picks the back end (`auto` or `numpy`: compiled NumPy kernels; `interpreter`:
the reference interpreter), `EMBER_NUM_THREADS` sizes the CPU thread pool,
`EMBER_TILE` sets the elements per tile, `EMBER_VERIFY=1` runs the graph
verifier between passes and checks every compiled-graph cache hit against the
graph it was built from (the test suite turns it on), `EMBER_PLANS=0` makes
every backward pass take the general path (no replayed plans: tracer/plans.py),
`EMBER_AUTOTUNE=0` launches every Triton matmul and reduction with its heuristic's
blocks, untimed (runtime/autotune.py).
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass, field

from ..codegen.numpy_policy import TILE_ELEMS

__all__ = ["ConfigError", "Options", "debug", "default_cache_dir", "log", "options"]


def default_cache_dir() -> str:
    """Where the disk cache lives when EMBER_CACHE_DIR is unset or empty."""
    return os.path.join(os.path.expanduser("~"), ".cache", "ember")


class ConfigError(ValueError):
    """An EMBER_* environment variable holds a value ember does not accept."""


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
BACKENDS = ("auto", "numpy", "triton", "interpreter", "reference")


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _flag(name: str, default: str = "0") -> bool:
    """A yes/no variable; unset means `default`."""
    text = os.environ.get(name, default).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}={os.environ[name]!r} is not a yes/no value: use one of "
                      f"{', '.join(repr(v) for v in _TRUE + _FALSE[1:])}, or unset it")


def _count(name: str, accepted: str, low: int = 0, high: int | None = None) -> int:
    """A whole-number variable in [low, high]; unset or empty means 0 (the default)."""
    text = _env(name)
    try:
        value = int(text or 0)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise ConfigError(f"{name}={os.environ[name]!r} is not accepted: {accepted}")
    return value


def _backend() -> str:
    name = _env("EMBER_BACKEND").lower() or "auto"
    if name not in BACKENDS:
        raise ConfigError(f"EMBER_BACKEND={os.environ['EMBER_BACKEND']!r} is not a back end: "
                          f"use one of {', '.join(BACKENDS)}")
    return name


@dataclass
class Options:
    # the eager mode every thread starts in (em.set_eager switches one thread)
    eager_default: bool = field(default_factory=lambda: _flag("EMBER_EAGER"))
    debug: int = field(default_factory=lambda: _count(
        "EMBER_DEBUG", "use 0 (off), 1 (kernels and timings) or 2 (graphs and source too)",
        0, 2))
    cache: bool = field(default_factory=lambda: _flag("EMBER_CACHE", "1"))
    # NOTE: an empty EMBER_CACHE_DIR means unset (not the current directory)
    cache_dir: str = field(default_factory=lambda: os.environ.get("EMBER_CACHE_DIR", "")
                           or default_cache_dir())
    backend: str = field(default_factory=_backend)
    num_threads: int = field(default_factory=lambda: _count(
        "EMBER_NUM_THREADS", "use a whole number of threads of at least 1 (0 or unset: "
        "one per core)") or (os.cpu_count() or 1))
    # pending in-place writes a storage may stack up before it is realised
    max_pending_writes: int = 32
    # compiled path: elements per tile, in-memory cache bounds, verifier
    tile_elems: int = field(default_factory=lambda: _count(
        "EMBER_TILE", f"use a whole number of elements per tile of at least 1 (0 or unset: "
        f"{TILE_ELEMS})") or TILE_ELEMS)
    # backward passes replay the plan their structure left (tracer/plans.py)
    plans: bool = field(default_factory=lambda: _flag("EMBER_PLANS", "1"))
    # Triton matmuls and reductions time their candidate configs on a GPU
    autotune: bool = field(default_factory=lambda: _flag("EMBER_AUTOTUNE", "1"))
    cache_entries: int = 1024
    cache_bytes: int = 256 << 20
    disk_cache_entries: int = 4096  # files kept per compiler version (LRU by mtime)
    verify: bool = field(default_factory=lambda: _flag("EMBER_VERIFY"))
    # "cuda" emulated in CPU memory, its kernels interpreted (tests; runtime/devices.py)
    cuda_emulate: bool = field(default_factory=lambda: _flag("EMBER_CUDA_EMULATE"))
    # programs of many small kernels replayed as CUDA graphs where faster (cuda_graphs.py)
    cuda_graphs: bool = field(default_factory=lambda: _flag("EMBER_CUDA_GRAPHS", "1"))


options = Options()

# NOTE: debug output goes through this logger, so an application routes it like any other
# library's; EMBER_DEBUG decides what is said. Where nothing routes it (no handler on it
# or above it), `debug` adds one that writes to stderr.
log = logging.getLogger("ember")


class _Stderr(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is when a line is said (a redirected
    or captured stderr too), not to the one there was when it was made."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


# NOTE: how many realisations ran (`counts["runs"]`, re-exported by runtime/execute.py);
# here so that every debug line can name its realisation ("run N") without importing
# execute
counts: Counter = Counter()


def which_run() -> str:
    """Which realisation a debug line belongs to: "run N", N counting realisations."""
    return f"run {counts['runs']}"


def debug(message: str) -> None:
    """Say `message` on ember's logger (callers check `options.debug` first)."""
    if not log.hasHandlers():
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("[ember] %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
    if log.level == logging.NOTSET:
        log.setLevel(logging.DEBUG)
    log.debug(message)
