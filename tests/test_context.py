"""Per-thread context (runtime/context.py, tracer/mode.py): grad mode, eager mode and
em.compile's trace belong to the calling thread; the generator is shared, as torch's.

Threads are interleaved deterministically with a Barrier: each test says which
thread does what between two `wait()`s.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from helpers import needs_torch, on_threads, torch

import ember as em
from ember.runtime import options
from ember.runtime.context import Generator, current, default_generator


def _barrier() -> threading.Barrier:
    return threading.Barrier(2, timeout=30)


def _both(first, second) -> None:
    """Run first() and second() on two threads at once; raise the first error."""
    errors = on_threads(lambda i: (first, second)[i](), n=2)
    if errors:
        raise errors[0]


# -- grad mode ------------------------------------------------------------------------

def test_no_grad_in_one_thread_leaves_another_thread_recording():
    step = _barrier()
    seen = {}

    def quiet():
        x = em.tensor([1.0, 2.0], requires_grad=True)
        with em.no_grad():
            step.wait()  # 1: inside no_grad; the other thread records now
            step.wait()  # 2: it is done
            seen["quiet"] = ((x * 3).requires_grad, em.is_grad_enabled())
        seen["after"] = em.is_grad_enabled()

    def loud():
        step.wait()  # 1
        try:
            x = em.tensor([1.0, 2.0], requires_grad=True)
            y = (x * x).sum()
            seen["loud"] = (y.requires_grad, em.is_grad_enabled())
            y.backward()
            seen["grad"] = x.grad.tolist()
        finally:
            step.wait()  # 2

    _both(quiet, loud)
    assert seen["loud"] == (True, True)
    assert seen["grad"] == [2.0, 4.0]
    assert seen["quiet"] == (False, False)
    assert seen["after"] is True


@pytest.mark.parametrize("lib", ["ember", pytest.param("torch", marks=needs_torch)])
def test_a_new_thread_starts_with_grad_enabled(lib):
    """As in torch: the mode of the thread that starts another is not inherited."""
    m = em if lib == "ember" else torch
    seen = []
    with m.no_grad():
        t = threading.Thread(target=lambda: seen.append(m.is_grad_enabled()))
        t.start()
        t.join()
        assert not m.is_grad_enabled()
    m.set_grad_enabled(False)
    try:
        t = threading.Thread(target=lambda: seen.append(m.is_grad_enabled()))
        t.start()
        t.join()
    finally:
        m.set_grad_enabled(True)
    assert seen == [True, True]


def test_set_grad_enabled_in_a_thread_changes_that_thread_only():
    step = _barrier()
    seen = {}

    def off():
        em.set_grad_enabled(False)  # the thread ends with it off: nothing to restore
        step.wait()
        step.wait()
        seen["off"] = em.is_grad_enabled()

    def on():
        step.wait()
        seen["on"] = em.is_grad_enabled()
        step.wait()

    _both(off, on)
    assert seen == {"off": False, "on": True}
    assert em.is_grad_enabled()


# -- the switches as decorators ---------------------------------------------------------

@pytest.mark.parametrize("lib", ["ember", pytest.param("torch", marks=needs_torch)])
def test_grad_switches_decorate_generator_functions_step_by_step(lib):
    m = em if lib == "ember" else torch

    @m.no_grad()
    def gen():
        got = yield m.is_grad_enabled()
        yield (got, m.is_grad_enabled())
        return "done"

    it = gen()
    assert next(it) is False
    assert m.is_grad_enabled()  # between steps the caller's mode holds
    assert it.send("x") == ("x", False)
    with pytest.raises(StopIteration) as stop:
        next(it)
    assert stop.value.value == "done"
    assert m.is_grad_enabled()

    @m.enable_grad()
    def gen_on():
        yield m.is_grad_enabled()

    with m.no_grad():
        assert list(gen_on()) == [True]
        assert not m.is_grad_enabled()


@pytest.mark.parametrize("lib", ["ember", pytest.param("torch", marks=needs_torch)])
def test_no_grad_without_parentheses_and_set_grad_enabled_as_decorators(lib):
    m = em if lib == "ember" else torch

    @m.no_grad
    def off():
        return m.is_grad_enabled()

    @m.set_grad_enabled(False)
    def also_off():
        return m.is_grad_enabled()

    assert m.is_grad_enabled()  # decorating switched nothing
    assert off() is False and also_off() is False
    assert m.is_grad_enabled()


def test_a_generator_closed_early_runs_its_cleanup_in_the_mode():
    seen = []

    @em.no_grad()
    def gen():
        try:
            yield 1
        finally:
            seen.append(em.is_grad_enabled())

    it = gen()
    next(it)
    it.close()
    assert seen == [False] and em.is_grad_enabled()


@pytest.mark.parametrize("bad", [1, None, "yes"])
def test_modes_take_only_bools(bad):
    with pytest.raises(TypeError, match="must be bool"):
        em.set_grad_enabled(bad)
    with pytest.raises(TypeError, match="must be bool"):
        em.set_eager(bad)
    assert em.is_grad_enabled() and not em.is_eager()


def test_a_switch_restores_only_its_own_mode():
    with em.no_grad():
        em.set_eager(True)
    assert em.is_eager() and em.is_grad_enabled()
    em.set_eager(False)


# -- eager mode -------------------------------------------------------------------------

def test_eager_mode_is_per_thread():
    step = _barrier()
    seen = {}

    def eager():
        em.set_eager(True)
        step.wait()  # 1: eager here while the other thread builds lazily
        seen["eager"] = (em.is_eager(), (em.ones(3) * 2)._storage.is_realized)
        step.wait()  # 2

    def lazy():
        step.wait()  # 1
        try:
            seen["lazy"] = (em.is_eager(), (em.ones(3) * 2)._storage.is_realized)
            with em.eager():
                seen["block"] = (em.ones(3) * 2)._storage.is_realized
        finally:
            step.wait()  # 2

    _both(eager, lazy)
    assert seen == {"eager": (True, True), "lazy": (False, False), "block": True}
    assert not em.is_eager()


def test_a_new_thread_starts_in_the_eager_mode_the_environment_says():
    em.set_eager(not options.eager_default)
    seen = []
    t = threading.Thread(target=lambda: seen.append(em.is_eager()))
    t.start()
    t.join()
    assert seen == [options.eager_default]


# -- em.compile's trace -----------------------------------------------------------------

def test_a_trace_in_one_thread_leaves_another_thread_alone():
    """While one thread traces, another keeps its eager mode, and its backward() is not
    the trace's; the numbers the two draw differ."""
    step = _barrier()
    first = [True]
    seen = {}

    @em.compile
    def noisy(x):
        if first[0]:
            first[0] = False
            step.wait()  # 1: inside the trace; the other thread works now
            step.wait()  # 2
        return x + em.rand(4)

    @em.compile
    def scaled(w):
        if first[0]:
            first[0] = False
            step.wait()
            step.wait()
        return w * 2  # still needs autograd: not compiled, runs as it is

    def tracing():
        seen["noisy"] = noisy(em.zeros(4)).numpy()
        first[0] = True
        with pytest.warns(UserWarning, match="runs uncompiled"):
            seen["scaled"] = scaled(em.tensor([1.0, 2.0], requires_grad=True))

    def working():
        for _ in range(2):
            step.wait()  # 1
            try:
                em.set_eager(True)
                y = em.ones(3) * 2
                seen.setdefault("realized", []).append(y._storage.is_realized)
                seen.setdefault("drawn", []).append(em.rand(4).numpy())
                x = em.tensor([1.0, 2.0], requires_grad=True)
                (x * x).sum().backward()
                seen.setdefault("grad", []).append(x.grad.tolist())
            finally:
                step.wait()  # 2

    _both(tracing, working)
    assert seen["realized"] == [True, True]
    assert seen["grad"] == [[2.0, 4.0], [2.0, 4.0]]
    assert not np.allclose(seen["noisy"], seen["drawn"][0])
    out = seen["scaled"]
    assert out.requires_grad and out.grad_fn is not None
    assert "runs uncompiled" in scaled.explain()
    assert current().trace is None and not em.is_eager()


def test_a_trace_draws_what_the_function_would_draw():
    @em.compile
    def f(x):
        return x + em.rand(3)

    em.manual_seed(3)
    want = [em.rand(3).numpy() for _ in range(3)]
    em.manual_seed(3)
    got = [f(em.zeros(3)).numpy() for _ in range(3)]
    np.testing.assert_array_equal(np.stack(got), np.stack(want))


# -- the generator ----------------------------------------------------------------------

def test_seeded_draws_are_reproducible():
    em.manual_seed(11)
    a = [em.rand(5).numpy(), em.randn(2, 3).numpy(), em.randint(0, 9, (4,)).numpy()]
    em.manual_seed(11)
    b = [em.rand(5).numpy(), em.randn(2, 3).numpy(), em.randint(0, 9, (4,)).numpy()]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert em.initial_seed() == 11


@pytest.mark.parametrize("lib", ["ember", pytest.param("torch", marks=needs_torch)])
def test_the_generator_is_shared_by_threads(lib):
    """As torch's default generator: a seed set in one thread seeds the next draw of
    another, and draws in a thread move the counter everyone draws from."""
    m = em if lib == "ember" else torch
    m.manual_seed(5)
    want = [m.rand(4).tolist() for _ in range(2)]
    m.manual_seed(5)
    got = []
    t = threading.Thread(target=lambda: got.append(m.rand(4).tolist()))
    t.start()
    t.join()
    got.append(m.rand(4).tolist())
    assert got == want


def test_concurrent_draws_never_share_a_sequence_number():
    """Seed and counter change together under a lock: no two draws get one number."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        gen = Generator(seed=1)
        drawn: list[list[tuple[int, int]]] = [[] for _ in range(4)]
        errors = on_threads(lambda i: drawn[i].extend(gen.draw() for _ in range(5000)), n=4)
    finally:
        sys.setswitchinterval(old)
    assert not errors
    seqs = [s for d in drawn for _, s in d]
    assert sorted(seqs) == list(range(20000))
    assert gen.position() == (1, 20000)


def test_manual_seed_is_one_update():
    gen = Generator(seed=1, next_seq=7)
    assert gen.manual_seed(-1) == 2**64 - 1
    assert gen.position() == (2**64 - 1, 0)
    assert default_generator is current().generator


def test_the_context_is_immutable():
    ctx = current()
    with pytest.raises(AttributeError, match="immutable"):
        ctx.grad_enabled = False
    with pytest.raises(TypeError, match="unexpected keyword"):
        ctx.replace(grad=False)
    assert em.is_grad_enabled()
