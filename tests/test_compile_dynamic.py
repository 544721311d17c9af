"""Dynamic dimensions of em.compile: one trace serves every size of a dimension."""

import warnings

import numpy as np
import pytest

import ember as em
from ember import nn

SIZES = [3, 5, 4, 8, 16, 2, 7, 9, 12, 6, 10, 11]


def _data(n, rng):
    x = em.tensor(rng.standard_normal((n, 6)).astype(np.float32))
    y = em.tensor(rng.standard_normal((n, 3)).astype(np.float32))
    return x, y


def _mlp_step(m):
    def step(x, y):
        loss = ((m(x) - y) ** 2).mean()
        loss.backward()
        with em.no_grad():
            return loss.detach(), m(x).sum(1)
    return step


@pytest.mark.parametrize("dynamic", [True, None])
def test_batch_sizes_through_an_mlp_trace_at_most_twice(dynamic):
    em.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    step = _mlp_step(m)
    f = em.compile(step, dynamic=dynamic)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no recompile limit, no graph break
        for n in SIZES + SIZES[:3]:
            x, y = _data(n, rng)
            m.zero_grad()
            got = [t.numpy() for t in f(x, y)]
            got_grads = [p.grad.numpy() for p in m.parameters()]
            m.zero_grad()
            want = [t.numpy() for t in step(x, y)]
            for a, b in zip(got + got_grads, want + [p.grad.numpy() for p in m.parameters()]):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    stats = f.stats()
    assert stats["traces"] == 2 and stats["resized"] == len(SIZES) - 2
    assert stats["hits"] == 3
    text = em.explain(f)
    assert "dynamic: argument 0 dim 0, argument 1 dim 0 (traced at sizes 3 and 5)" in text
    assert "served without tracing at sizes 4, 8, 16, 2, 7" in text


def test_dynamic_false_specialises_every_size():
    f = em.compile(lambda x: (x * 2).sum(1), dynamic=False)
    for n in (2, 3, 4, 5):
        f(em.ones(n, 3))
    assert f.stats()["traces"] == 4 and f.stats()["resized"] == 0


def test_views_slices_and_means_follow_the_size():
    def fn(x):
        return x[1:] * 2, x.T, x.mean(0), x.reshape(-1) + 1, x[:, 1:].exp().sum()

    f = em.compile(fn, dynamic=True)
    rng = np.random.default_rng(1)
    for n in (2, 3, 7, 4, 10):
        x = em.tensor(rng.standard_normal((n, 3)).astype(np.float32))
        got, want = f(x), fn(x)
        for a, b in zip(got, want):
            assert a.shape == b.shape and a.stride() == b.stride()
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
        got[1].mul_(1)  # x.T is a view of x, as uncompiled
        assert got[1].data_ptr() == x.data_ptr()
    assert f.stats()["traces"] == 2


def test_a_reshape_that_splits_the_dim_specialises_again():
    def fn(x):
        return x.reshape(2, -1).sum(1)

    f = em.compile(fn, dynamic=True)
    for n in (4, 6, 8, 10):
        x = em.arange(float(n))
        np.testing.assert_allclose(f(x).numpy(), fn(x).numpy())
    assert f.stats()["traces"] == 4 and f.stats()["resized"] == 0
    text = em.explain(f)
    assert "argument 0 dim 0 (traced at sizes 4 and 6) is specialised again at size 8" in text
    assert "a dim of a RESHAPE node's shape (2, 2) -> (2, 3) is 2 at size 4 and 3 at size 6" \
        in text
    assert "until it was specialised again" in text


def test_guards_still_catch_rank_dtype_and_small_sizes():
    f = em.compile(lambda x: x.sum(0) * 2, dynamic=True)
    for n in (3, 4, 5):
        f(em.ones(n, 2))
    assert f.stats()["traces"] == 2
    np.testing.assert_array_equal(f(em.ones(5, 2, dtype=em.float64)).numpy(), [10.0, 10.0])
    assert f(em.ones(5, 2, dtype=em.float64)).dtype == em.float64
    assert f.stats()["traces"] == 3
    np.testing.assert_array_equal(f(em.ones(5, 2, 1)).numpy(), [[10.0], [10.0]])
    assert f.stats()["traces"] == 4
    np.testing.assert_array_equal(f(em.ones(1, 2)).numpy(), [2.0, 2.0])  # 1 is specialised
    assert f.stats()["traces"] == 5
    np.testing.assert_array_equal(f(em.ones(6, 3)).numpy(), [12.0] * 3)  # two dims changed
    assert f.stats()["traces"] == 6


def test_a_dynamic_dim_of_a_captured_model_in_eval_mode():
    em.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 5), nn.Dropout(0.3)).requires_grad_(False)
    f = em.compile(lambda x: m(x))
    for n in (2, 3, 9):
        f(em.ones(n, 4))
    m.eval()
    for n in (4, 11, 5, 7, 9):  # 9: a size served in train mode, now in eval mode
        x = em.ones(n, 4)
        np.testing.assert_allclose(f(x).numpy(), m(x).numpy(), rtol=1e-6)
    assert f.stats()["traces"] == 4  # train mode: 2 sizes; eval mode: 2 sizes
    assert f.stats()["resized"] == 4
    m.train()
    f(em.ones(9, 4))
    assert f.stats()["hits"] == 1


def test_variances_and_size_dependent_constants_follow_the_size():
    def fn(x):
        return x.var(0), x.std(1, correction=0), x * x.shape[0], x / (x.shape[0] + 1)

    f = em.compile(fn)
    rng = np.random.default_rng(2)
    for n in (3, 4, 9, 6):
        x = em.tensor(rng.standard_normal((n, 5)).astype(np.float32))
        for a, b in zip(f(x), fn(x)):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
    assert f.stats()["traces"] == 2 and f.stats()["resized"] == 2


def test_batch_norm_statistics_follow_a_dynamic_batch():
    em.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5)).requires_grad_(False)
    f = em.compile(lambda x: m(x))
    for n in (3, 4, 6, 8):
        x = em.tensor(np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32))
        before = [t.numpy().copy() for t in m.buffers()]
        got = f(x).numpy()
        got_stats = [t.numpy().copy() for t in m.buffers()]
        for t, v in zip(m.buffers(), before):
            t.copy_(em.tensor(v))
        np.testing.assert_allclose(got, m(x).numpy(), rtol=1e-5, atol=1e-6)
        for a, b in zip(got_stats, m.buffers()):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-6)
    assert f.stats()["traces"] == 2  # Bessel's n / (n - 1) follows the size


def test_cross_entropy_over_a_dynamic_batch():
    em.manual_seed(0)
    m = nn.Linear(6, 4)

    def step(x, y):
        loss = nn.functional.cross_entropy(m(x), y)
        loss.backward()
        return loss.detach()

    f = em.compile(step)
    rng = np.random.default_rng(3)
    for n in (5, 6, 9, 2, 13):
        x = em.tensor(rng.standard_normal((n, 6)).astype(np.float32))
        y = em.tensor(rng.integers(0, 4, n))
        m.zero_grad()
        got, got_grad = f(x, y).item(), m.weight.grad.numpy()
        m.zero_grad()
        assert got == pytest.approx(step(x, y).item(), rel=1e-5)
        np.testing.assert_allclose(got_grad, m.weight.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert f.stats()["traces"] == 2 and f.stats()["resized"] == 3


@pytest.mark.parametrize("half", [False, True])
def test_an_argument_and_its_grad_share_a_dynamic_dim(half):
    def fn(x):
        (x * x).sum().backward()
        out = x.detach()
        return (out[: out.shape[0] // 2] if half else out) * 1

    f = em.compile(fn)
    for n in (4, 6, 8, 10, 12):
        x, y = (em.arange(float(n)).requires_grad_() for _ in range(2))
        x.grad, y.grad = em.ones(n), em.ones(n)
        np.testing.assert_array_equal(f(x).numpy(), fn(y).numpy())
        np.testing.assert_array_equal(x.grad.numpy(), y.grad.numpy())
    # n // 2 is no affine function of n: that dim is traced per size
    assert f.stats()["traces"] == (5 if half else 2)
    assert "argument 0 dim 0, argument 0.grad dim 0 (traced at sizes 4 and 6)" in em.explain(f)


def test_the_two_point_fit_of_size_dependent_numbers():
    from ember.tracer.dynamic import Fit, NotDynamic

    f = Fit(4, 6, 10)
    assert f.value(8, 12) == 20 and f.value(3, 5) == 9 and f.value(-4, -6) == -10
    assert f.value((4, 3), (6, 3)) == (10, 3)
    assert f.value(8.0, 12.0) == 20.0  # a mean's count
    assert f.value(0.25, 1 / 6) == pytest.approx(0.1)  # its inverse
    assert f.value(3.0, 5.0) == 9.0  # a variance's n - 1
    assert f.value(4 / 3, 6 / 5) == pytest.approx(10 / 9)  # Bessel's n / (n - 1)
    assert f.value(float("inf"), float("inf")) == float("inf")
    for x, y in ((2, 3), (0.1, 0.25), (float("nan"), 1.0), ("a", "b"), (1, 1.0)):
        with pytest.raises(NotDynamic):
            f.value(x, y)


def test_explain_with_arguments_uses_a_dynamic_dim_as_a_call_would():
    f = em.compile(lambda x: x.sum(1))
    f(em.ones(3, 2))
    f(em.ones(4, 2))
    text = em.explain(f, em.ones(9, 2))
    assert f.stats()["traces"] == 2 and f.stats()["resized"] == 1
    assert "served without tracing at sizes 9" in text
    g = em.explain(f, em.ones(9, 2), graph=True)
    assert any(d["shape"] == (9, 2) for _, d in g.nodes(data=True))
