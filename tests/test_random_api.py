"""em.Generator, generator=, randperm, normal, bernoulli, multinomial and the in-place
samplers: statistics, reproducibility, and the same values lazy, eager and compiled."""

import warnings

import numpy as np
import pytest

import ember as em


def _draws():
    """One of each sampler, from the default generator."""
    x = em.zeros(6)
    return [em.randperm(8), em.normal(em.zeros(4), em.ones(4) * 2), em.normal(1.0, 3.0, (3,)),
            em.bernoulli(em.full((6,), 0.4)), em.multinomial(em.tensor([1.0, 2.0, 3.0]), 5, True),
            em.multinomial(em.tensor([[1.0, 2.0, 3.0, 0.5]]), 3), x.normal_().clone(),
            x.uniform_(-1, 1).clone(), x.bernoulli_(0.5).clone(), x.random_(0, 7).clone(),
            x.exponential_(2.0).clone()]


def _values(ts):
    return [t.tolist() for t in ts]


def test_reproducible_and_the_same_lazy_eager_compiled():
    em.manual_seed(11)
    lazy = _values(_draws())
    em.manual_seed(11)
    with em.eager():
        eager = _values(_draws())
    assert lazy == eager
    em.manual_seed(11)

    @em.compile(fullgraph=True)
    def f():
        return _draws()
    compiled = _values(f())
    assert compiled == lazy
    em.manual_seed(11)
    assert _values(f()) == lazy  # the replay draws the same sequence numbers
    assert _values(f()) != lazy  # and then moves on


def test_generators_are_independent_of_the_default():
    g1, g2 = em.Generator().manual_seed(5), em.Generator().manual_seed(5)
    em.manual_seed(0)
    a = em.rand(4, generator=g1)
    between = em.rand(4)  # the default generator moves on its own
    b = em.rand(4, generator=g2)
    assert a.tolist() == b.tolist() and a.tolist() != between.tolist()
    em.manual_seed(0)
    assert em.rand(4).tolist() == between.tolist()
    assert g1.initial_seed() == 5 and isinstance(g1.seed(), int)
    assert em.Generator().device == em.device("cpu")
    for fn in (lambda g: em.randn(3, generator=g), lambda g: em.randint(0, 9, (3,), generator=g),
               lambda g: em.randperm(5, generator=g), lambda g: em.normal(0.0, 1.0, (2,),
                                                                          generator=g),
               lambda g: em.zeros(3).uniform_(generator=g),
               lambda g: em.multinomial(em.ones(4), 2, generator=g)):
        assert fn(em.Generator().manual_seed(1)).tolist() == \
            fn(em.Generator().manual_seed(1)).tolist()


def test_state_round_trips():
    g = em.Generator().manual_seed(9)
    em.rand(2, generator=g)
    s = g.get_state()
    assert s.dtype is em.uint8 and s.shape == (16,)
    a = em.rand(3, generator=g)
    assert g.set_state(s) is g
    assert em.rand(3, generator=g).tolist() == a.tolist()
    d = em.get_rng_state()
    b = em.randn(3)
    em.set_rng_state(d)
    assert em.randn(3).tolist() == b.tolist()
    with pytest.raises(TypeError, match="uint8 tensor of 16 bytes"):
        g.set_state(em.zeros(3))


def test_generator_inside_compile_is_a_graph_break():
    g = em.Generator().manual_seed(2)

    @em.compile
    def f(x):
        return x + em.rand(3, generator=g)

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        a = f(em.zeros(3))
    assert any("graph break" in str(m.message) for m in w)
    assert a.tolist() == em.rand(3, generator=em.Generator().manual_seed(2)).tolist()
    with pytest.raises(em.GraphBreak):
        em.compile(lambda x: x + em.rand(3, generator=g), fullgraph=True)(em.zeros(3))


def test_randperm_is_a_permutation_and_varies():
    em.manual_seed(0)
    perms = {tuple(em.randperm(6).tolist()) for _ in range(30)}
    assert all(sorted(p) == list(range(6)) for p in perms) and len(perms) > 20
    assert em.randperm(0).tolist() == [] and em.randperm(3, dtype=em.int32).dtype is em.int32
    with pytest.raises(RuntimeError, match="non-negative"):
        em.randperm(-1)


def test_normal_statistics_and_gradients():
    em.manual_seed(1)
    z = em.normal(3.0, 2.0, (20000,)).numpy()
    assert abs(z.mean() - 3.0) < 0.05 and abs(z.std() - 2.0) < 0.05
    mean = em.tensor([0.0, 10.0], requires_grad=True)
    std = em.tensor([1.0, 0.5], requires_grad=True)
    out = em.normal(mean, std)
    out.sum().backward()
    # as torch's: d out / d mean = 1, d out / d std = (out - mean) / std
    assert mean.grad.tolist() == [1.0, 1.0]
    np.testing.assert_allclose(std.grad.numpy(), ((out - mean) / std).detach().numpy(),
                               rtol=1e-5)
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        em.normal(0.0, -1.0, (2,))


def test_bernoulli_and_in_place_statistics():
    em.manual_seed(2)
    p = em.tensor([0.0, 0.25, 1.0]).expand(20000, 3)
    m = em.bernoulli(p).mean(0).tolist()
    assert m[0] == 0.0 and abs(m[1] - 0.25) < 0.015 and m[2] == 1.0
    x = em.empty(20000)
    assert abs(x.uniform_(2.0, 4.0).mean().item() - 3.0) < 0.02
    assert 2.0 <= x.min().item() and x.max().item() < 4.0
    assert abs(x.normal_(1.0, 0.5).std().item() - 0.5) < 0.02
    assert abs(x.exponential_(4.0).mean().item() - 0.25) < 0.01
    assert abs(x.bernoulli_(0.75).mean().item() - 0.75) < 0.015
    r = x.random_(3, 6)
    assert set(r.tolist()) == {3.0, 4.0, 5.0}
    i = em.zeros(1000, dtype=em.int64).random_(10)
    assert set(i.tolist()) == set(range(10))


def test_multinomial_statistics():
    em.manual_seed(3)
    w = em.tensor([1.0, 0.0, 3.0])
    s = em.multinomial(w, 20000, replacement=True).numpy()
    counts = np.bincount(s, minlength=3) / s.size
    assert counts[1] == 0 and abs(counts[0] - 0.25) < 0.015
    # without replacement: distinct indices, weights ordering the first pick
    rows = em.tensor([[1.0, 1.0, 8.0, 0.0]]).expand(4000, 4)
    picks = em.multinomial(rows, 3).numpy()
    assert all(len(set(r)) == 3 and 3 not in r for r in picks[:50])
    assert abs((picks[:, 0] == 2).mean() - 0.8) < 0.03


def test_multinomial_errors_as_torch():
    with pytest.raises(RuntimeError, match="prob_dist must be 1 or 2 dim"):
        em.multinomial(em.ones(2, 2, 2), 1)
    with pytest.raises(RuntimeError, match="cannot sample n_sample > prob_dist.size"):
        em.multinomial(em.ones(3), 4)
    with pytest.raises(RuntimeError, match="element < 0"):
        em.multinomial(em.tensor([1.0, -1.0]), 1)
    with pytest.raises(RuntimeError, match="sum of probabilities <= 0"):
        em.multinomial(em.zeros(3), 1, replacement=True)
    with pytest.raises(RuntimeError, match="not enough non-negative category"):
        em.multinomial(em.tensor([1.0, 0.0, 0.0]), 2)


def test_in_place_samplers_refuse_leaves_requiring_grad():
    w = em.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.normal_()
    with em.no_grad():
        w.normal_()  # as nn.init does
    assert w.requires_grad and w.is_leaf
    with pytest.raises(RuntimeError, match="floating point"):
        em.zeros(2, dtype=em.int64).normal_()
