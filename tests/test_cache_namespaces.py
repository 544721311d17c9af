"""One owner per concern in the cache: one traversal gives every key, and each
namespace (memory, disk, backward plans, em.compile traces) has its own clear()
and stats()."""

from __future__ import annotations

import inspect
import os
import sys

import numpy as np
import pytest

import ember as em
from ember.runtime import cache, options
from ember.tracer import plans


@pytest.fixture(autouse=True)
def _fresh(tmp_path):
    saved = options.cache_dir, options.cache, options.backend, options.plans
    options.cache_dir, options.cache, options.backend = str(tmp_path / "cache"), True, "auto"
    options.plans = True
    cache.clear()
    plans.clear()
    yield
    options.cache_dir, options.cache, options.backend, options.plans = saved
    cache.clear()
    plans.clear()


def _graph():
    x = em.tensor(np.arange(6, dtype=np.float32))
    y = em.tensor(np.ones(6, dtype=np.float32))
    r = em.rand(6)
    return [((x * 2 + y).exp() + r * y).sum()._storage.node, (x - 1)._storage.node]


def test_canonical_is_the_walk_that_structure_keys():
    outs = _graph()
    key, inputs, params = cache.structure(outs)
    nodes, c_inputs, c_params = cache.canonical(outs)
    walked = cache.walk(outs)
    assert walked[0] == key and len(walked[3]) == len(key) - 1
    assert [a is b for a, b in zip(inputs, c_inputs)] == [True] * len(inputs) == [True, True]
    assert params == c_params and len(params) == 1
    # every input is a placeholder numbered as the walk found it
    buffers = sorted({n.arg for o in nodes for n in _nodes(o) if n.op.name == "BUFFER"})
    assert buffers == [-2, -1]
    assert cache.canonical(_graph())[0] == nodes  # hash-consed: the very same nodes


def _nodes(n):
    seen, stack = [], [n]
    while stack:
        m = stack.pop()
        if all(m is not s for s in seen):
            seen.append(m)
            stack.extend(m.inputs)
    return seen


def test_a_graph_deeper_than_the_recursion_limit_has_the_same_canonical_nodes():
    x = em.tensor(np.ones(3, dtype=np.float32))
    y = x
    for i in range(400):
        y = y * 1.5 if i % 2 else y + x
    outs = [y._storage.node]
    shallow = cache.canonical(outs)[0]
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 200)
    try:
        assert cache.walk(outs) is None
        deep = cache.canonical(outs)[0]
    finally:
        sys.setrecursionlimit(saved)
    assert deep == shallow


def test_memory_and_disk_have_their_own_stats_and_clear():
    (em.tensor([1.0, 2.0]) * 3).exp().sum().item()
    assert cache.memory.stats() is cache.stats() and cache.disk.stats() is cache.stats()
    assert cache.memory.stats().misses == 1 and cache.disk.stats().disk_writes == 1
    folder = cache.disk.folder
    assert len(os.listdir(folder)) == 1
    assert cache.disk.clear() == 1 and os.listdir(folder) == []
    assert len(cache.memory) == 1  # the memory cache still holds it
    cache.memory.clear()
    assert len(cache.memory) == 0 and cache.stats().misses == 0


def test_plans_clear_drops_only_plans_through_the_memory_cache():
    w = em.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for _ in range(3):
        w.grad = None
        (w * w).sum().backward()
    assert plans.stats()["learned"] == 1 and plans.stats()["replayed"] == 2
    keys = list(cache.memory.entries)
    assert any(type(k) is tuple and k[0] == "plan" for k in keys)
    others = [k for k in keys if not (type(k) is tuple and k[0] == "plan")]
    plans.clear()
    assert list(cache.memory.entries) == others
    assert plans.stats() == {"replayed": 0, "learned": 0}
    assert cache.stats().entries == len(others)
    assert cache.stats().bytes == sum(e.nbytes for e in cache.memory.entries.values())


def test_memory_discard_keeps_the_counters_in_step():
    (em.tensor([1.0]) + 1).item()
    (em.tensor([1.0, 2.0]) + 1).sum().item()
    assert cache.memory.discard(lambda key: False) == 0
    assert cache.memory.discard(lambda key: True) == 2
    assert len(cache.memory) == 0 and cache.stats().entries == 0 and cache.stats().bytes == 0


def test_compiled_functions_have_their_own_stats_and_clear():
    @em.compile
    def f(x):
        return x * 2 + 1

    x = em.tensor([1.0, 2.0])
    f(x)
    f(x)
    assert f.stats() == {"traces": 1, "hits": 1, "programs": 1, "uncompiled": 0, "resized": 0}
    f.clear()
    assert f.stats() == {"traces": 0, "hits": 0, "programs": 0, "uncompiled": 0, "resized": 0}
    np.testing.assert_array_equal(f(x).numpy(), [3.0, 5.0])
    assert f.stats()["traces"] == 1
