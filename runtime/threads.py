"""A small thread pool that runs a kernel's tiles (NumPy releases the GIL in ufuncs).

`tiles(fn, size, rows, inner, args, spec, cache, whole)` calls `fn(lo, hi, *args,
scratch)` for every tile [lo, hi) of `rows` along the tile axis (with `whole`,
once for each worker's run of tiles: the kernel holds no tile-sized arrays).
The tiles are split into one contiguous run per worker (`options.num_threads`,
from EMBER_NUM_THREADS, default the core count); small kernels run in the
calling thread. `scratch` is a list of arrays allocated from `spec` ((shape,
dtype) pairs); each worker takes a set from `cache` and gives it back, so runs
reuse them.
"""

from __future__ import annotations

import threading

import numpy as np

from .config import options

__all__ = ["pool", "tiles"]

# below this many elements per worker, threads cost more than they save
MIN_PARALLEL_ELEMS = 1 << 17

_pool: list = [None, 0]
_lock = threading.Lock()


def _init_worker() -> None:
    np.seterr(all="ignore")


def pool(workers: int):
    """The shared ThreadPoolExecutor (recreated if the thread count changed)."""
    # NOTE: imported on first use: a process that never runs a large kernel
    # does not pay for importing concurrent.futures
    from concurrent.futures import ThreadPoolExecutor

    with _lock:
        if _pool[0] is None or _pool[1] != workers:
            if _pool[0] is not None:
                _pool[0].shutdown(wait=False)
            _pool[0] = ThreadPoolExecutor(workers, thread_name_prefix="ember",
                                          initializer=_init_worker)
            _pool[1] = workers
        return _pool[0]


def _scratch(spec, cache: list) -> list:
    try:
        return cache.pop()
    except IndexError:
        return [np.empty(shape, dtype) for shape, dtype in spec]


def _run(fn, size, rows, args, spec, cache, first, last, whole) -> None:
    if whole:
        # NOTE: a kernel without scratch or filled arrays computes each row on its
        # own, so one call over the worker's whole run of tiles gives the same
        # result with one NumPy call per op instead of one per tile.
        fn(first * rows, min(size, last * rows), *args, [])
        return
    s = _scratch(spec, cache)
    try:
        for t in range(first, last):
            lo = t * rows
            fn(lo, min(size, lo + rows), *args, s)
    finally:
        cache.append(s)


def tiles(fn, size: int, rows: int, inner: int, args: tuple, spec, cache: list,
          whole: bool = False) -> None:
    """Run fn over the tiles of [0, size) (`inner` elements per index of the tile axis)."""
    ntiles = -(-size // rows)
    workers = min(options.num_threads, ntiles, max(1, size * inner // MIN_PARALLEL_ELEMS))
    if workers <= 1:
        _run(fn, size, rows, args, spec, cache, 0, ntiles, whole)
        return
    bounds = [ntiles * w // workers for w in range(workers + 1)]
    ex = pool(options.num_threads)
    futures = [ex.submit(_run, fn, size, rows, args, spec, cache, bounds[w], bounds[w + 1],
                         whole) for w in range(1, workers)]
    try:
        _run(fn, size, rows, args, spec, cache, bounds[0], bounds[1], whole)
    finally:
        for f in futures:
            f.result()
