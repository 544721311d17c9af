"""em.compile: trace once per signature, replay, write back, guard, break."""

import warnings

import numpy as np
import pytest

import ember as em


def rosenbrock_step(x, lr):
    f = (1 - x[0]) ** 2 + 5 * (x[1] - x[0] ** 2) ** 2
    f.backward()
    with em.no_grad():
        x.sub_(lr * x.grad)
        x.grad.zero_()
    return f.detach()


def test_a_compiled_training_step_matches_the_lazy_loop_and_traces_once_per_signature():
    step = em.compile(rosenbrock_step)
    x = em.tensor([-1.0, 1.0], requires_grad=True)
    y = em.tensor([-1.0, 1.0], requires_grad=True)
    for _ in range(200):
        fc = step(x, 0.01)
        fl = rosenbrock_step(y, 0.01)
    np.testing.assert_array_equal(x.detach().numpy(), y.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), y.grad.numpy())
    assert fc.item() == fl.item()
    # .grad starts as None, then exists: two signatures, every later call a cache hit
    assert step.traces == 2 and step.hits == 198
    text = em.explain(step)
    assert "recompiled because argument 0 changed" in text
    assert "writes back 1 argument(s) and 1 .grad(s)" in text


def test_outputs_keep_their_structure_and_values():
    def f(a, b, *, scale):
        return {"sum": (a * b).sum(0) * scale, "pair": (a.T, 3)}, [b.exp()]
    cf = em.compile(f)
    a, b = em.randn(2, 3), em.randn(3)
    for _ in range(3):
        got, want = cf(a, b, scale=2.0), f(a, b, scale=2.0)
        np.testing.assert_allclose(got[0]["sum"].numpy(), want[0]["sum"].numpy(), rtol=1e-6)
        np.testing.assert_array_equal(got[0]["pair"][0].numpy(), want[0]["pair"][0].numpy())
        assert got[0]["pair"][1] == 3 and isinstance(got[1], list)
        np.testing.assert_allclose(got[1][0].numpy(), want[1][0].numpy(), rtol=1e-6)
    assert cf.traces == 1 and cf.hits == 2


def test_in_place_updates_of_arguments_and_views_are_written_back():
    @em.compile
    def bump(t, k):
        t.mul_(k)
        return t.sum()

    base = em.arange(6, dtype=em.float32)
    column = base.view(2, 3)[:, 1]
    for _ in range(2):
        total = bump(column, 10)
    assert base.tolist() == [0.0, 100.0, 2.0, 3.0, 400.0, 5.0]
    assert total.item() == 500.0
    assert bump.traces == 1 and bump.hits == 1


def test_arguments_sharing_memory_run_uncompiled():
    def bump(t, v):
        t.add_(1)
        v.mul_(10)

    base = em.arange(6, dtype=em.float32)
    with pytest.warns(UserWarning, match="share memory"):
        em.compile(bump)(base[:4], base.view(2, 3)[:, 1])
    assert base.tolist() == [1.0, 20.0, 3.0, 4.0, 40.0, 5.0]


def test_random_numbers_match_uncompiled_code():
    f = em.compile(lambda a: a * em.rand(3))
    em.manual_seed(3)
    got = [f(em.ones(3)).tolist() for _ in range(3)]
    em.manual_seed(3)
    want = [(em.ones(3) * em.rand(3)).tolist() for _ in range(3)]
    assert got == want


def test_a_graph_break_warns_with_the_line_and_runs_uncompiled():
    def f(a):
        if a.sum() > 0:  # needs a value: a graph break
            return a * 2
        return a

    cf = em.compile(f)
    with pytest.warns(UserWarning, match=r"graph break at .*test_compile.py:\d+: if a.sum"):
        assert cf(em.ones(2)).tolist() == [2.0, 2.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cf(-em.ones(2)).tolist() == [-1.0, -1.0]  # no second warning
    with pytest.raises(em.GraphBreak, match="fullgraph=True"):
        em.compile(f, fullgraph=True)(em.ones(2))


def test_results_that_still_need_autograd_run_uncompiled():
    w = em.tensor([1.0, 2.0], requires_grad=True)
    cf = em.compile(lambda x: (x * 3).sum())
    with pytest.warns(UserWarning, match="requires grad and no backward"):
        out = cf(w)
    out.backward()
    assert w.grad.tolist() == [3.0, 3.0]


def test_guards_retrace_on_shape_dtype_and_values():
    cf = em.compile(lambda a, k: a * k)
    cf(em.ones(2), 2)
    cf(em.ones(3), 2)
    cf(em.ones(3, dtype=em.float64), 2)
    cf(em.ones(3, dtype=em.float64), 5)
    assert cf.traces == 4
    assert cf(em.ones(3, dtype=em.float64), 5).tolist() == [5.0] * 3
    assert cf.hits == 1


def test_eager_mode_calls_the_function():
    calls = []

    @em.compile
    def f(a):
        calls.append(1)
        return a + 1

    with em.eager():
        f(em.ones(1))
        f(em.ones(1))
    assert len(calls) == 2


def test_a_linear_regression_step_compiles_and_agrees():
    em.manual_seed(0)
    X = em.randn(32, 3)
    y = X @ em.tensor([1.0, -2.0, 0.5]) + 0.3

    def step(w, c):
        loss = ((X @ w + c - y) ** 2).mean()
        loss.backward()
        with em.no_grad():
            for p in (w, c):
                p.sub_(0.1 * p.grad)
                p.grad.zero_()
        return loss.detach()

    cstep = em.compile(step)
    w1, c1 = em.tensor([0.0] * 3, requires_grad=True), em.tensor(0.0, requires_grad=True)
    w2, c2 = em.tensor([0.0] * 3, requires_grad=True), em.tensor(0.0, requires_grad=True)
    for _ in range(50):
        l1, l2 = cstep(w1, c1), step(w2, c2)
    np.testing.assert_allclose(w1.detach().numpy(), w2.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(l1.item(), l2.item(), rtol=1e-5)
    assert l1.item() < 1e-3
    assert cstep.traces == 2


def test_bad_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        em.compile(lambda a: a, backend="fast")


def test_explain_exports_the_fused_graph_to_networkx():
    import networkx as nx
    f = em.compile(lambda x, w: ((x @ w).relu() * 2).sum(1))
    x, w = em.ones(4, 3), em.ones(3, 5)
    g = em.explain(f, x, w, graph=True)
    assert isinstance(g, nx.DiGraph) and nx.is_directed_acyclic_graph(g)
    ops = {d["op"] for _, d in g.nodes(data=True)}
    assert {"MATMUL", "REDUCE_SUM"} <= ops
    kernels = {d["kernel"] for _, d in g.nodes(data=True) if d["kernel"]}
    assert kernels and all(k.startswith("k") for k in kernels)
    assert [d["output"] for _, d in g.nodes(data=True)].count(True) == 1
    assert em.explain(em.compile(lambda v: v * v[0].item()), em.ones(2), graph=True) is None
