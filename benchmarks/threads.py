"""Keeping the libraries' thread pools from starving on small or busy machines.

torch (OpenMP) and NumPy's OpenBLAS run small parallel ops on worker threads that spin
while they wait, and ember hands a large kernel's tiles to threads of its own. Where other
processes, or a virtual machine's scheduler, keep those
workers off a core of their own, every parallel op waits for a time slice: a 256x256
sum or a 128x128 matmul that takes microseconds takes milliseconds, and the library
looks a thousand times slower than it is. A `Pool` times one small parallel op with one
thread at start and with the pool's own threads before every case; a case where the
pool is starved (10x slower than one thread) runs with one thread, the others with the
pool's own, and a note says so. A fixed count (`--torch-threads`) switches the watch off.
"""

from __future__ import annotations

import ctypes
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from .limits import best_time

__all__ = ["Pool", "ember_pool", "openblas_pool", "torch_pool"]

STARVED = 10.0  # times slower than one thread


@dataclass
class Pool:
    name: str
    op: str  # the op `probe` times, for the note
    get: Callable[[], int]
    set: Callable[[int], None]
    probe: Callable[[], float]  # seconds per op with the current thread count
    threads: int = 1  # the pool's own thread count, taken at start
    single_s: float | None = None  # the probe with one thread; None while not watched
    starved_cases: int = 0

    def start(self) -> Pool:
        """Time the op with one thread, so `check` can compare; returns self."""
        self.threads = self.get()
        if self.threads > 1:
            self.set(1)
            try:
                self.single_s = self.probe()
            finally:
                self.set(self.threads)
        return self

    def check(self) -> str | None:
        """Choose the thread count for the next case: the pool's own, or one if it starves.

        Returns a note the first time the pool is found starved.
        """
        if self.single_s is None:
            return None
        self.set(self.threads)
        now = self.probe()
        if now < STARVED * self.single_s:
            return None
        self.set(1)
        self.starved_cases += 1
        if self.starved_cases > 1:
            return None
        return (f"{self.name}'s {self.threads} threads are starved here (a {self.op} takes "
                f"{now * 1e6:.0f} us with them, {self.single_s * 1e6:.1f} us with one: other "
                f"processes or the scheduler keep them off a core of their own); {self.name} "
                "runs with 1 thread in every case where that is so (see each case's threads)")


def _per_op(op: Callable[[], object], calls: int = 3) -> float:
    return best_time(lambda: [op() for _ in range(calls)], 3) / calls


def torch_pool(torch: ModuleType) -> Pool:
    x = torch.ones(256, 256)
    return Pool("torch", "256x256 sum", torch.get_num_threads, torch.set_num_threads,
                lambda: _per_op(x.sum))


def ember_pool(em: ModuleType) -> Pool:
    """A Pool for ember's own kernel threads (runtime/threads.py, `options.num_threads`),
    which run the tiles of a large kernel; the probe realises a cached kernel just large
    enough to use them (an elementwise op over two tiles)."""
    runtime = importlib.import_module(f"{em.__name__}.runtime")
    threads = importlib.import_module(f"{em.__name__}.runtime.threads")
    options = runtime.options
    x = em.ones(2 * threads.MIN_PARALLEL_ELEMS)

    def put(n: int) -> None:
        options.num_threads = n

    return Pool("ember", f"{x.numel()}-element kernel", lambda: options.num_threads, put,
                lambda: _per_op(lambda: (x * 2.0 + 1.0).realize()))


def _openblas() -> ctypes.CDLL | None:
    """NumPy's OpenBLAS, found among the loaded libraries (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def openblas_pool() -> Pool | None:
    """A Pool for NumPy's OpenBLAS, or None where its thread count cannot be set."""
    import numpy as np

    lib = _openblas()
    if lib is None:
        return None
    names = [(f"{p}_get_num_threads{s}", f"{p}_set_num_threads{s}")
             for p in ("scipy_openblas", "openblas") for s in ("64_", "")]
    found = [(getattr(lib, get), getattr(lib, put)) for get, put in names
             if hasattr(lib, get) and hasattr(lib, put)]
    if not found:
        return None
    get, put = found[0]
    a = np.ones((128, 128), dtype=np.float32)
    return Pool("OpenBLAS", "128x128 matmul", get, put, lambda: _per_op(lambda: a @ a))
