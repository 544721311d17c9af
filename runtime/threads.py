"""A small thread pool that runs a kernel's tiles (NumPy releases the GIL in ufuncs).

`tiles(fn, size, rows, inner, args, spec, cache, whole, bufsize)` calls `fn(lo, hi,
*args, scratch)` for every tile [lo, hi) of `rows` along the tile axis (with
`whole`, once for each worker's run of tiles: the kernel holds no tile-sized
arrays; with `bufsize`, under that NumPy ufunc buffer size, restored after).
The tiles are split into one contiguous run per thread (`options.num_threads`,
from EMBER_NUM_THREADS, default the core count): the calling thread runs the
first and `num_threads - 1` pool threads the others; small kernels run in the
calling thread alone. `scratch` is a list of arrays allocated from `spec`
((shape, dtype) pairs); each thread takes a set from `cache` and gives it back,
so runs reuse them.

Each pool thread waits on a lock of its own and reports on another: a round
trip costs ~80 us on a 2-core VM (the time a sleeping core takes to wake),
against ~90 us through `concurrent.futures`' queue and condition variable. One
kernel uses the pool at a time; a kernel started meanwhile (from another
thread) runs in its caller's thread. A forked child starts a pool of its own.
"""

from __future__ import annotations

import os
import threading
from functools import partial

import numpy as np

from .config import options

__all__ = ["MIN_PARALLEL_ELEMS", "tiles"]

# below this many elements per thread, threads cost more than they save
MIN_PARALLEL_ELEMS = 1 << 17


class _Worker:
    """One pool thread: `start(task)` hands it a task, `join()` waits for it."""

    __slots__ = ("task", "error", "go", "done")

    def __init__(self, index: int):
        self.task = None
        self.error: BaseException | None = None
        self.go = threading.Lock()
        self.done = threading.Lock()
        self.go.acquire()
        self.done.acquire()
        threading.Thread(target=self._loop, name=f"ember-{index}", daemon=True).start()

    def _loop(self) -> None:
        np.seterr(all="ignore")
        while True:
            self.go.acquire()
            task, self.task = self.task, None
            try:
                task()
            except BaseException as e:  # noqa: BLE001 - re-raised by join() in the caller
                self.error = e
            self.done.release()

    def start(self, task) -> None:
        self.task = task
        self.go.release()

    def join(self) -> None:
        self.done.acquire()
        if self.error is not None:
            error, self.error = self.error, None
            raise error


_workers: list[_Worker] = []
_busy = threading.Lock()  # held by the kernel using the pool


def _pool(n: int) -> list[_Worker]:
    """The pool's first n threads (started on first use; _busy is held)."""
    while len(_workers) < n:
        _workers.append(_Worker(len(_workers) + 1))
    return _workers[:n]


def _forget_after_fork() -> None:
    # a forked child has none of the parent's threads
    global _busy
    _workers.clear()
    _busy = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _scratch(spec, cache: list) -> list:
    try:
        return cache.pop()
    except IndexError:
        return [np.empty(shape, dtype) for shape, dtype in spec]


def _run(fn, size, rows, args, spec, cache, first, last, whole, bufsize=0) -> None:
    if bufsize:
        old = np.setbufsize(bufsize)
        try:
            _run(fn, size, rows, args, spec, cache, first, last, whole)
        finally:
            np.setbufsize(old)
        return
    if whole:
        # NOTE: a kernel without scratch or filled arrays computes each row on its
        # own, so one call over the thread's whole run of tiles gives the same
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
          whole: bool = False, bufsize: int = 0) -> None:
    """Run fn over the tiles of [0, size) (`inner` elements per index of the tile axis)."""
    ntiles = -(-size // rows)
    n = min(options.num_threads, ntiles, max(1, size * inner // MIN_PARALLEL_ELEMS))
    if n <= 1 or not _busy.acquire(blocking=False):
        _run(fn, size, rows, args, spec, cache, 0, ntiles, whole, bufsize)
        return
    try:
        bounds = [ntiles * w // n for w in range(n + 1)]
        helpers = _pool(n - 1)
        for w, worker in enumerate(helpers, 1):
            worker.start(partial(_run, fn, size, rows, args, spec, cache,
                                 bounds[w], bounds[w + 1], whole, bufsize))
        try:
            _run(fn, size, rows, args, spec, cache, bounds[0], bounds[1], whole, bufsize)
        finally:
            for worker in helpers:
                worker.join()
    finally:
        _busy.release()
