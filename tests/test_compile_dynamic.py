"""Dynamic dimensions of em.compile: one trace serves every size of a dimension."""

import warnings

import numpy as np
import pytest

import ember as em
from ember import nn
from ember.runtime import cache, options

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


# -- one program for every size (runtime/symbolic.py) ---------------------------------

def _compiles() -> int:
    return cache.stats().compiles


def _family(f):
    families = [t._family for t in f.templates if t._family is not None]
    assert len(families) == 1
    return families[0]


def _sgd_step(model, opt):
    def step(x, y):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def test_one_program_serves_every_batch_size_of_a_training_step():
    em.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    twin = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    with em.no_grad():
        for p, q in zip(twin.parameters(), m.parameters()):
            p.copy_(q)
    f = em.compile(_sgd_step(m, em.optim.SGD(m.parameters(), lr=0.1)))
    step = _sgd_step(twin, em.optim.SGD(twin.parameters(), lr=0.1))
    torch = _torch_twin(m)
    rng = np.random.default_rng(0)
    made = []
    for n in SIZES:
        x, y = _data(n, rng)
        before = _compiles()
        got = f(x, y).item()
        made.append(_compiles() - before)
        assert got == step(x, y).item()
        for p, q in zip(m.parameters(), twin.parameters()):
            np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
        if torch is not None:
            assert got == pytest.approx(torch(x.numpy(), y.numpy()), rel=1e-5)
    stats = f.stats()
    assert stats["resized"] == len(SIZES) - stats["traces"] and stats["traces"] <= 3
    # the traced sizes compile their own graphs; one program then serves every other size
    assert sum(made[stats["traces"] + 1:]) == 0, made
    assert _family(f).why is None
    assert "one program serves every size" in em.explain(f)


def _torch_twin(m):
    """A torch step of the same model and SGD, or None without torch."""
    torch = _import_torch()
    if torch is None:
        return None
    tm = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        for p, q in zip(tm.parameters(), m.parameters()):
            p.copy_(torch.from_numpy(q.detach().numpy().copy()))
    opt = torch.optim.SGD(tm.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = ((tm(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def test_one_program_serves_elementwise_ops_and_reductions_over_other_dims():
    def fn(x):
        return ((x * 2 + 1).exp().sum(1), x.softmax(1), x.amax(1),
                (x - x.mean(1, keepdim=True)).abs(), x.sum())

    f = em.compile(fn)
    rng = np.random.default_rng(4)
    made = []
    for n in SIZES:
        x = em.tensor(rng.standard_normal((n, 5)).astype(np.float32))
        before = _compiles()
        got = f(x)
        made.append(_compiles() - before)
        for a, b in zip(got, fn(x)):
            assert a.shape == b.shape
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
    assert f.stats()["traces"] == 2
    assert made[3:] == [0] * (len(SIZES) - 3), made
    assert _family(f).why is None


def test_sizes_0_and_1_and_a_derived_size_1_are_not_served_by_the_shared_program():
    def fn(x):
        return x[1:] * 2, (x + 1).sum(1)

    f = em.compile(fn)
    for n in (4, 5, 6, 1, 0, 2, 3, 9):
        x = em.tensor(np.arange(n * 3, dtype=np.float32).reshape(n, 3))
        for a, b in zip(f(x), fn(x)):
            assert a.shape == b.shape
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    family = _family(f)
    served = {p.size: p.entry.source is family.entry.source for e in f.programs.values()
              if isinstance(e, list) for p in e if p.resized}
    # 1 and 0 are traced; at 2, x[1:] has one row, so 2 compiles a program of its own
    assert served == {6: True, 2: False, 3: True, 9: True}


def test_functions_with_one_graph_share_one_program_for_every_size():
    def make():
        return em.compile(lambda x: (x * 3).sum(1).tanh())

    f, g = make(), make()
    for n in (3, 4, 5):
        f(em.ones(n, 2))
    for n in (3, 4):
        g(em.ones(n, 2))
    x = em.tensor(np.ones((7, 2), np.float32))
    before = _compiles()
    np.testing.assert_allclose(g(x).numpy(), np.tanh(np.full(7, 6.0)), rtol=1e-6)
    assert _compiles() == before
    assert _family(g).entry is _family(f).entry


def test_the_symbolic_key_and_source_of_three_sizes():
    from ember.runtime.symbolic import POINTS, NotSymbolic, Sym, fit, matches, parameterise

    assert fit([3, 3, 3]) == 3
    assert fit([p * 6 - 1 for p in POINTS]) == Sym(6, -1)
    with pytest.raises(NotSymbolic):
        fit([p * p for p in POINTS])  # the size squared: no affine function
    with pytest.raises(NotSymbolic):
        fit([p // 2 for p in POINTS])
    key = ((1, Sym(1, 0), "f32"), (Sym(1, -1),))
    assert matches(key, ((1, 7, "f32"), (6,)), 7)
    assert not matches(key, ((1, 7, "f32"), (7,)), 7)
    assert not matches(key, ((1, 2, "f32"), (1,)), 2)  # a size-dependent number of 1
    src = [f"x = np.empty(({p}, 3))\ny = {p * 3}\n" for p in POINTS]
    assert parameterise(src) == "x = np.empty(((_size), 3))\ny = (3*_size)\n"
    with pytest.raises(NotSymbolic, match="differ"):
        parameterise(["a = 1\n", "b = 1\n", "a = 1\n"])
    with pytest.raises(NotSymbolic):
        parameterise([f"x = {p // 2}\n" for p in POINTS])


def test_explain_says_why_each_size_compiles_its_own_program():
    # a number of the graph equal to one of the sizes the program is made at: at that
    # size two nodes are one, the graphs differ, and each size compiles its own
    # program (and still runs without tracing)
    def fn(x):
        return x.sum(1) * em.full((x.shape[0],), 3.0), em.full((11,), 3.0) * x.sum()

    f = em.compile(fn)
    for n in (3, 4, 5, 6):
        x = em.tensor(np.ones((n, 2), np.float32))
        for a, b in zip(f(x), fn(x)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert f.stats()["traces"] == 2
    assert _family(f).why is not None
    assert "each size compiles its own program: " in em.explain(f)


_W = em.tensor(np.random.default_rng(7).standard_normal((5, 4)).astype(np.float32))
_BODIES = {
    "broadcast": lambda x: (x * _W[:, 0] - x.amin(1, keepdim=True)).relu(),
    "matmul": lambda x: (x @ _W).tanh().sum(0),
    "outer": lambda x: (x @ x.T).sum(1),
    "views": lambda x: (x.T[:, 1:] * 2, x.flip(0)[1:].exp(), x.reshape(-1)[3:].cumsum(0)),
    "norm": lambda x: nn.functional.layer_norm(x, (5,)).log_softmax(1),
    "var": lambda x: (x.var(0), x.std(1), x.mean()),
    "where": lambda x: em.where(x > 0, x, x.exp() - 1).max(1).values,
    "cast": lambda x: (x.half() * 3).float().sum(1).to(em.float64),
    "cat": lambda x: em.cat([x, x * 2], 0).sum(1),
}


@pytest.fixture(params=["whole", "tiled"])
def tiling(request, monkeypatch):
    """"tiled": tiles of 16 elements on two threads, so that sizes above 16 elements run
    the shared program's tiled form, in many tiles."""
    if request.param == "tiled":
        monkeypatch.setattr(options, "tile_elems", 16)
        monkeypatch.setattr(options, "num_threads", 2)
        cache.clear()  # NOTE: programs are not keyed by the tile size in memory
        yield SIZES + [40, 67, 33]
        cache.clear()
    else:
        yield SIZES


@pytest.mark.parametrize("name", sorted(_BODIES))
def test_one_program_for_every_size_agrees_with_uncompiled(name, tiling):
    body = _BODIES[name]

    def fn(x):
        y = x.detach().requires_grad_()
        outs = body(y)
        outs = outs if isinstance(outs, tuple) else (outs,)
        sum(o.float().sum() for o in outs).backward()
        return (*outs, y.grad)

    f = em.compile(fn)
    rng = np.random.default_rng(5)
    for n in tiling:
        x = em.tensor(rng.standard_normal((n, 5)).astype(np.float32))
        for a, b in zip(f(x), fn(x)):
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(),
                                       rtol=1e-5, atol=1e-5)
    assert f.stats()["traces"] == 2
    assert _family(f).why is None, _family(f).why
    # its tiled form was made too (it runs above `tiled_above` elements of the input)
    assert "def _make_tiled(_size)" in _family(f).entry.source, _family(f).entry.report


def test_a_number_that_fits_two_sizes_but_not_a_third_specialises_again():
    # n * n at 3 and 4 fits 9 + 7 * (n - 3), which is 23 at 5: no reshape of (5, 5)
    def fn(x):
        return (x[:, None] * x).reshape(x.shape[0] * x.shape[0]) + 1

    f = em.compile(fn)
    for n in (3, 4, 5, 6):
        x = em.tensor(np.arange(n, dtype=np.int64))
        np.testing.assert_array_equal(f(x).numpy(), np.outer(x, x).reshape(-1) + 1)
    assert f.stats()["traces"] == 4
    assert "specialised again: RESHAPE does not apply at size 5" in em.explain(f)


_FAMILY_SCRIPT = """
import json
import numpy as np
import ember as em
from ember.runtime import cache

w = em.tensor(np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4))
f = em.compile(lambda x: ((x * 2 + 1).relu() @ w).softmax(1).sum(0))
values = [f(em.tensor(np.linspace(-2, 2, 5 * n, dtype=np.float32).reshape(n, 5))).tolist()
          for n in (5, 7, 9, 3000)]
(family,) = [t._family for t in f.templates]
s = cache.stats()
print(json.dumps({"values": values, "compiles": s.compiles, "disk_hits": s.disk_hits,
                  "disk_writes": s.disk_writes, "tiled": "_make_tiled" in family.entry.source,
                  "checked": family.entry.checked, "traces": f.stats()["traces"]}))
"""


def test_the_shared_program_is_kept_on_disk_for_a_new_process(tmp_path):
    import json
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("EMBER_BACKEND", "EMBER_EAGER")}
    env.update(EMBER_CACHE_DIR=str(tmp_path), EMBER_CACHE="1")

    def run():
        out = subprocess.run([sys.executable, "-c", _FAMILY_SCRIPT], env=env, text=True,
                             capture_output=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = run()
    # two traced sizes compile their programs, then the shared one serves 9 and 3000
    assert (first["traces"], first["compiles"], first["disk_writes"]) == (2, 3, 3)
    assert first["tiled"] and first["checked"]
    second = run()
    assert (second["compiles"], second["disk_hits"]) == (0, 3)
    assert second["checked"]  # its first call was checked against the graph it served
    assert second["values"] == first["values"]


def _family_file(folder) -> str:
    """The one file of the disk cache in `folder` that holds a shared program."""
    import pathlib
    (path,) = [p for p in pathlib.Path(folder).rglob("*.py")
               if "def _make(_size)" in p.read_text()]
    return str(path)


def test_a_shared_program_loaded_with_the_wrong_outputs_is_compiled_again(tmp_path,
                                                                          monkeypatch):
    import shutil
    rng = np.random.default_rng(3)
    xs = [em.tensor(rng.standard_normal((n, 5)).astype(np.float32)) for n in (4, 6, 9)]

    def run(fn):
        f = em.compile(fn)
        return [f(x).numpy() for x in xs]

    def sums(x):
        return (x * 2).sum(1)

    monkeypatch.setattr(options, "cache_dir", str(tmp_path / "a"))
    cache.clear()
    want = run(sums)
    good = _family_file(tmp_path / "a")
    monkeypatch.setattr(options, "cache_dir", str(tmp_path / "b"))
    run(lambda x: (x * 2).sum(0))  # another family: outputs of (5,) at every size
    shutil.copyfile(_family_file(tmp_path / "b"), good)  # whole and checksummed, but wrong
    monkeypatch.setattr(options, "cache_dir", str(tmp_path / "a"))
    cache.clear()
    got = run(sums)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    s = cache.stats()
    assert (s.disk_rejects, s.compiles) == (1, 1)  # the shared program, compiled again
    cache.clear()  # rewritten: the next load is the right program
    assert all(np.array_equal(a, b) for a, b in zip(run(sums), want))
    assert (cache.stats().disk_rejects, cache.stats().compiles) == (0, 0)
