"""The tile pool (runtime/threads.py): every tile runs once, errors reach the caller,
concurrent kernels and forked children work."""

from __future__ import annotations

import os
import sys
import threading
import warnings

import numpy as np
import pytest
from helpers import on_threads

import ember as em
from ember.runtime import options, threads


@pytest.fixture(autouse=True)
def _three_threads(monkeypatch):
    monkeypatch.setattr(options, "num_threads", 3)
    monkeypatch.setattr(options, "tile_elems", 1024)
    monkeypatch.setattr(threads, "MIN_PARALLEL_ELEMS", 4)


def test_every_tile_runs_once_across_the_threads():
    seen, names = [], set()

    def tile(lo, hi, out, s):
        names.add(threading.current_thread().name)
        seen.append((lo, hi))
        out[lo:hi] += 1

    out = np.zeros(100)
    threads.tiles(tile, 100, 7, 1, (out,), (((7,), "<f8"),), [])
    assert sorted(seen) == [(lo, min(100, lo + 7)) for lo in range(0, 100, 7)]
    assert (out == 1).all() and len(names) == 3


def test_an_error_in_a_pool_thread_reaches_the_caller_and_the_pool_goes_on():
    def tile(lo, hi, s):
        if lo >= 50:
            raise ZeroDivisionError(f"tile {lo}")

    with pytest.raises(ZeroDivisionError, match="tile"):
        threads.tiles(tile, 100, 10, 1, (), (), [], True)
    out = np.zeros(100)
    threads.tiles(lambda lo, hi, o, s: o.__setitem__(slice(lo, hi), 2), 100, 10, 1, (out,),
                  (), [], True)
    assert (out == 2).all()


def test_kernels_from_several_threads_at_once():
    rng = np.random.default_rng(0)
    data = [rng.standard_normal(20000).astype(np.float32) for _ in range(4)]
    want = [np.abs(d * 3 + 1) for d in data]
    got = [None] * 4

    def work(i):
        x = em.from_numpy(data[i])
        for _ in range(20):
            got[i] = ((x * 3 + 1).abs()).numpy()

    assert not on_threads(work)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                    reason="needs os.fork")
def test_a_forked_child_runs_kernels_on_a_pool_of_its_own():
    out = np.zeros(64)
    threads.tiles(lambda lo, hi, o, s: o.__setitem__(slice(lo, hi), 1), 64, 8, 1, (out,),
                  (), [], True)  # the parent's pool threads exist now
    with warnings.catch_warnings():  # Python 3.12 warns about forking with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            child = np.zeros(64)
            threads.tiles(lambda lo, hi, o, s: o.__setitem__(slice(lo, hi), 3), 64, 8, 1,
                          (child,), (), [], True)
            os._exit(0 if (child == 3).all() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_buffer_size_holds_in_every_thread_for_its_tiles_and_is_restored():
    seen = set()

    def tile(lo, hi, s):
        seen.add((threading.current_thread().name, np.getbufsize()))

    before = np.getbufsize()
    threads.tiles(tile, 100, 10, 1, (), (), [], True, 1024)
    assert {size for _, size in seen} == {1024} and len(seen) == 3
    assert np.getbufsize() == before
    seen.clear()
    threads.tiles(tile, 100, 10, 1, (), (), [], True)  # the pool threads are back too
    assert {size for _, size in seen} == {before}
