"""The compiled-graph cache: keys, hits and misses, eviction, the disk store.

Subprocess tests run a small script under a temporary EMBER_CACHE_DIR and read
the cache counters it prints, so "loaded from disk in a new process" is what
is tested, not an in-process imitation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import on_threads

import ember as em
from ember.runtime import cache, options
from ember.runtime.compiled import compiled_for


@pytest.fixture(autouse=True)
def _fresh(tmp_path):
    saved = (options.cache_dir, options.cache, options.cache_entries, options.cache_bytes,
             options.backend)
    options.backend = "auto"  # these tests are about the compiled path, whatever the env
    options.cache_dir = str(tmp_path / "cache")
    options.cache = True
    cache.clear()
    yield
    (options.cache_dir, options.cache, options.cache_entries, options.cache_bytes,
     options.backend) = saved
    cache.clear()


def f(x):
    return ((x * 3).exp() + 1).sum()


def test_same_structure_hits_and_other_data_does_not_matter():
    a = f(em.tensor([1.0, 2.0])).item()
    b = f(em.tensor([3.0, -4.0])).item()
    s = cache.stats()
    assert (s.misses, s.hits, s.compiles) == (1, 1, 1)
    assert a == pytest.approx(np.exp(3) + np.exp(6) + 2)
    assert b == pytest.approx(np.exp(9) + np.exp(-12) + 2)


def test_other_shapes_dtypes_and_constants_miss():
    f(em.tensor([1.0, 2.0])).item()
    f(em.tensor([1.0, 2.0, 3.0])).item()
    f(em.tensor([1.0, 2.0], dtype=em.float64)).item()
    ((em.tensor([1.0, 2.0]) * 4).exp() + 1).sum().item()
    assert cache.stats().misses == 4 and cache.stats().hits == 0


def test_stats_are_inspectable_and_clear_resets_them():
    f(em.tensor([1.0])).item()
    s = cache.stats()
    assert s.entries == 1 and s.bytes > 0 and s.disk_writes == 1
    cache.clear()
    assert cache.stats().misses == 0 and len(cache.memory) == 0


def rosenbrock_steps(x, n):
    for _ in range(n):
        f = (1 - x[0]) ** 2 + 5 * (x[1] - x[0] ** 2) ** 2
        f.backward()
        with em.no_grad():
            x.sub_(0.01 * x.grad)
            x.grad.zero_()


def test_rosenbrock_loop_compiles_once():
    options.cache = False
    x = em.tensor([-1.0, 1.0], requires_grad=True)
    rosenbrock_steps(x, 3)
    warm = cache.stats().compiles
    assert warm <= 3  # the first step (no .grad yet) differs from the rest
    rosenbrock_steps(x, 200)
    assert cache.stats().compiles == warm
    assert cache.stats().hits >= 200
    ref = em.tensor([-1.0, 1.0], requires_grad=True)
    options.backend, saved = "interpreter", options.backend
    try:
        rosenbrock_steps(ref, 203)
    finally:
        options.backend = saved
    assert np.array_equal(x.detach().numpy(), ref.detach().numpy())


def test_random_numbers_do_not_recompile():
    options.cache = False
    em.manual_seed(0)
    draws = [(em.rand(5) * 2).sum().item() for _ in range(5)]
    assert len(set(draws)) == 5
    assert cache.stats().compiles == 1 and cache.stats().hits == 4


def test_lru_eviction_by_entries():
    options.cache = False
    options.cache_entries = 2
    def g(n):
        return f(em.tensor(np.arange(n, dtype=np.float32))).item()

    for n in (1, 2, 3):
        g(n)
    assert cache.stats().evictions == 1 and len(cache.memory) == 2
    g(3)  # still there
    g(1)  # evicted: compiled again
    assert cache.stats().compiles == 4


def test_lru_eviction_by_bytes():
    options.cache = False
    f(em.tensor([1.0])).item()
    one = cache.stats().bytes
    options.cache_bytes = int(one * 2.5)
    for n in (2, 3, 4):
        f(em.tensor(np.arange(n, dtype=np.float32))).item()
    assert cache.stats().bytes <= options.cache_bytes and cache.stats().evictions >= 2


def test_cache_off_writes_nothing():
    options.cache = False
    f(em.ones(2)).item()
    assert not os.path.exists(options.cache_dir)


SCRIPT = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import ember as em
    from ember.runtime import cache
    x = em.tensor([0.5, 1.5, 2.5])
    y = ((x * 3).exp() + 1).sum()
    t1 = time.perf_counter()
    value = y.item()
    t2 = time.perf_counter()
    s = cache.stats()
    print(json.dumps({"value": value, "compiles": s.compiles, "disk_hits": s.disk_hits,
                      "disk_rejects": s.disk_rejects, "disk_writes": s.disk_writes,
                      "ms": (t2 - t1) * 1e3}))
""")


def script_env(cache_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("EMBER_BACKEND", "EMBER_EAGER")}
    return dict(env, EMBER_CACHE_DIR=str(cache_dir), EMBER_CACHE="1")


def run_script(cache_dir, script=SCRIPT):
    env = script_env(cache_dir)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def entries(cache_dir):
    return [os.path.join(root, name) for root, _, names in os.walk(cache_dir)
            for name in names]


def test_disk_round_trip_in_a_new_process(tmp_path):
    first = run_script(tmp_path)
    assert first["compiles"] == 1 and first["disk_writes"] == 1
    second = run_script(tmp_path)
    assert second["compiles"] == 0 and second["disk_hits"] == 1
    assert second["value"] == first["value"]
    (path,) = entries(tmp_path)
    with open(path) as fh:
        assert '"kernels": 1' in fh.read()  # metadata travels with the source


@pytest.mark.parametrize("damage", ["truncate", "edit", "garbage"])
def test_corrupt_entry_is_recompiled_and_rewritten(tmp_path, damage):
    first = run_script(tmp_path)
    (path,) = entries(tmp_path)
    with open(path) as fh:
        text = fh.read()
    if damage == "truncate":
        text = text[: len(text) // 2]
    elif damage == "edit":
        text = text.replace("np.exp(", "np.sin(")
        assert "np.sin(" in text
    else:
        text = "raise SystemExit('must never run')\n"
    with open(path, "w") as fh:
        fh.write(text)
    second = run_script(tmp_path)
    assert second["disk_rejects"] == 1 and second["compiles"] == 1
    assert second["value"] == first["value"]
    third = run_script(tmp_path)  # the rewritten entry is good again
    assert third["disk_hits"] == 1 and third["compiles"] == 0


def test_two_processes_writing_the_same_entry(tmp_path):
    env = script_env(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0]["value"] == results[1]["value"]
    files = entries(tmp_path)
    assert len(files) == 1 and not any(".tmp-" in p for p in files)
    third = run_script(tmp_path)
    assert third["disk_hits"] == 1 and third["compiles"] == 0


def test_compiled_for_reports_kernels():
    x = em.tensor([1.0, 2.0])
    assert compiled_for((x * 2 + 1).exp()).kernels == 1


def test_realisations_on_several_threads():
    options.cache = False

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(30):
            a = rng.standard_normal(5).astype(np.float32)
            assert f(em.tensor(a)).item() == pytest.approx(
                float((np.exp(a * 3) + 1).sum()), rel=1e-5)

    assert not on_threads(work)
    assert cache.stats().hits + cache.stats().misses == 120


def test_on_by_default():
    from ember.runtime.config import Options
    assert Options().backend in ("auto", "numpy") or "EMBER_BACKEND" in os.environ
    f(em.tensor([1.0, 2.0])).item()
    assert cache.stats().misses == 1


def test_disk_cache_keeps_the_most_recently_used_files(monkeypatch):
    monkeypatch.setattr(options, "disk_cache_entries", 3)
    monkeypatch.setattr(cache.DiskCache, "PRUNE_EVERY", 1)  # prune on every write
    x = em.tensor([0.5, 1.5])

    def graph(k):
        return (x * (k + 2.0)).exp().sum()
    written = {}
    for k in range(6):  # six graphs, written one after another
        before = set(entries(options.cache_dir))
        graph(k).item()
        (new,) = set(entries(options.cache_dir)) - before
        os.utime(new, (1000.0 + k, 1000.0 + k))  # distinct, increasing use times
        written[k] = new
    assert sorted(entries(options.cache_dir)) == sorted(written[k] for k in (3, 4, 5))
    # loading a graph touches its file: it outlives files used before it
    cache.clear()
    graph(3).item()
    assert cache.stats().disk_hits == 1
    assert cache.disk.prune(keep=1) == 2
    assert entries(options.cache_dir) == [written[3]]
