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
every backward pass take the general path (no replayed plans: tracer/plans.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..ir.passes.fusion import TILE_ELEMS

__all__ = ["Options", "default_cache_dir", "options"]


def default_cache_dir() -> str:
    """Where the disk cache lives when EMBER_CACHE_DIR is unset or empty."""
    return os.path.join(os.path.expanduser("~"), ".cache", "ember")


def _flag(name: str, default: str = "0") -> bool:
    return os.environ.get(name, default).strip().lower() not in ("", "0", "false", "no", "off")


@dataclass
class Options:
    # the eager mode every thread starts in (em.set_eager switches one thread)
    eager_default: bool = field(default_factory=lambda: _flag("EMBER_EAGER"))
    debug: int = field(default_factory=lambda: int(os.environ.get("EMBER_DEBUG", "0") or 0))
    cache: bool = field(default_factory=lambda: _flag("EMBER_CACHE", "1"))
    # NOTE: an empty EMBER_CACHE_DIR means unset (not the current directory)
    cache_dir: str = field(default_factory=lambda: os.environ.get("EMBER_CACHE_DIR", "")
                           or default_cache_dir())
    backend: str = field(default_factory=lambda: os.environ.get("EMBER_BACKEND", "auto"))
    num_threads: int = field(default_factory=lambda: int(
        os.environ.get("EMBER_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1))
    # pending in-place writes a storage may stack up before it is realised
    max_pending_writes: int = 32
    # compiled path: elements per tile, in-memory cache bounds, verifier
    tile_elems: int = field(default_factory=lambda: int(os.environ.get("EMBER_TILE", "0") or 0)
                            or TILE_ELEMS)
    # backward passes replay the plan their structure left (tracer/plans.py)
    plans: bool = field(default_factory=lambda: _flag("EMBER_PLANS", "1"))
    cache_entries: int = 1024
    cache_bytes: int = 256 << 20
    disk_cache_entries: int = 4096  # files kept per compiler version (LRU by mtime)
    verify: bool = field(default_factory=lambda: _flag("EMBER_VERIFY"))


options = Options()
