"""Python numbers that reach a graph are runtime parameters of the cached program:
a loop whose scalars change every step compiles once, lazily and under em.compile,
and every value (special ones included) computes what a fresh evaluation computes."""

import math
import os
import random
import subprocess
import sys
import warnings

import numpy as np
import pytest

import ember as em
from ember.runtime import cache

torch = pytest.importorskip("torch")

SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 3.0, -2.5, 1e-30, 1e30, 3.4e38, 1e300,
           math.nan, math.inf, -math.inf, 0.1, 7.0, 123456.789]
DTYPES = [em.float32, em.float64, em.float16, em.bfloat16]


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def compiles() -> int:
    s = cache.stats()
    return s.compiles + s.disk_hits


def eager(fn, *args):
    with em.eager():
        return fn(*args).numpy()


def same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


X = np.array([0.5, -1.25, 3.0, 0.0, -0.0, 1e-3, 40.0, -7.5], dtype=np.float32)


def test_the_decaying_scalar_loop_compiles_once():
    x = em.tensor(X)
    for i in range(200):
        s = 0.9 ** i
        out = (x * s + 1).exp().sum().item()
        if i % 37 == 0:
            assert out == eager(lambda t: (t * s + 1).exp().sum(), em.tensor(X)).item()
    # NOTE: s = 1.0 (step 0) is keyed by value (x * 1 folds away): one more program
    assert compiles() == 2 and cache.stats().hits >= 198


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_value_computes_what_a_fresh_evaluation_does(dtype):
    def fns(s):
        return [lambda t: t * s + 1, lambda t: (t - s) / 3.0, lambda t: t.clamp(min=s),
                lambda t: em.where(t > s, t, s * t), lambda t: (t + s).sum(),
                lambda t: t ** 2 * s, lambda t: s - t, lambda t: s / (t + 1)]
    for s in SPECIAL + [int(v) for v in (0, 1, 5, 1000)]:
        for k in range(len(fns(s))):
            x = em.tensor(X).to(dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = fns(s)[k](x).numpy()
                want = eager(fns(s)[k], em.tensor(X).to(dtype))
            same(got, want)


def test_python_floats_keep_weak_promotion_with_float64_tensors():
    x = em.tensor(X, dtype=em.float64)
    for s in (0.1, 0.3, 1e-200):
        out = x * s
        assert out.dtype == em.float64
        same(out.numpy(), X.astype(np.float64) * s)
    y = em.tensor(X)
    assert (y * 0.1).dtype == em.float32 and (y * 3).dtype == em.float32
    assert (em.tensor([1, 2]) * 0.25).dtype == em.float32


def test_ints_and_floats_of_a_float_tensor_share_a_program():
    x = em.tensor(X)
    for s in (3, 4, 5.5, 6.25, 100):
        same((x * s).numpy(), X * np.float32(s))
    assert compiles() == 1


def test_integer_tensors_keep_their_scalars_keyed():
    x = em.tensor([1, 2, 3])
    for s in (3, 4, 5):
        same((x * s).numpy(), np.array([1, 2, 3]) * s)
    assert compiles() == 3


def test_exponents_and_identities_are_keyed_by_value():
    x = em.tensor(X)
    for e in (2.0, 0.5, 3.0, 2.0, 0.5, 3.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            same((x ** e).numpy(), eager(lambda t: t ** e, em.tensor(X)))
    assert compiles() == 3
    key = cache.structure([(em.tensor(X) * 1.0 + 0.25).node])[0]
    assert any("1.0" in map(str, t) for t in key if isinstance(t, tuple))
    # NOTE: x * 1 folds away, so it compiles apart from x * 0.25
    before = compiles()
    (x * 1.0).numpy()
    (x * 0.25).numpy()
    (x * 0.75).numpy()
    assert compiles() == before + 2


def test_a_constant_of_a_shape_and_a_param_as_output():
    for v in (0.25, 0.75):
        t = em.full((2, 3), v)
        same(t.numpy(), np.full((2, 3), v, dtype=np.float32))
        t.add_(1.0)
        same(t.numpy(), np.full((2, 3), v + 1, dtype=np.float32))
    r = em.full((4,), 0.3) + em.zeros(4)
    same((r * 0.7).sum().numpy(), (np.full(4, np.float32(0.3)) * np.float32(0.7)).sum())


def test_a_random_sequence_of_programs_differing_in_scalars():
    rng = random.Random(0)
    x = em.tensor(X)
    progs = [lambda t, a, b: (t * a + b).exp(), lambda t, a, b: (t - a).clamp(max=b),
             lambda t, a, b: (t * a).sum() + b, lambda t, a, b: em.maximum(t, t * a) / b]
    for _ in range(120):
        f = rng.choice(progs)
        a = rng.choice(SPECIAL + [rng.uniform(-3, 3)])
        b = rng.choice(SPECIAL + [rng.uniform(-3, 3)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            same(f(x, a, b).numpy(), eager(f, em.tensor(X), a, b))


def test_the_disk_cache_serves_one_program_for_every_value(tmp_path):
    code = ("import ember as em; from ember.runtime import cache;"
            "x = em.tensor([0.5, 1.5]); v = (x * {s} + 0.3).exp().sum().item();"
            "s = cache.stats(); print(v, s.compiles, s.disk_hits)")
    env = dict(os.environ, EMBER_CACHE_DIR=str(tmp_path))
    outs = []
    for s in (0.37, 0.81):
        r = subprocess.run([sys.executable, "-c", code.format(s=s)], env=env,
                           capture_output=True, text=True, check=True)
        outs.append(r.stdout.split())
    assert outs[0][1:] == ["1", "0"] and outs[1][1:] == ["0", "1"]
    x = np.array([0.5, 1.5], dtype=np.float32)
    want = float(np.exp(x * np.float32(0.81) + np.float32(0.3)).sum())
    assert float(outs[1][0]) == pytest.approx(want, rel=1e-6)


def test_a_backward_plan_keeps_its_constants_keyed():
    from ember.tracer import plans
    for s in (0.3, 0.7, 0.3):
        w = em.tensor(X, requires_grad=True)
        (w * s).exp().sum().backward()
        same(w.grad.numpy(), eager(lambda t: (t * s).exp() * s, em.tensor(X)))
    assert plans.stats()["replayed"] >= 1


def _torch_grad(fn, x, *scalars):
    t = torch.tensor(x, requires_grad=True)
    fn(t, *scalars).backward()
    return t.grad.numpy()


def test_a_changing_scalar_in_a_differentiated_expression_builds_one_plan():
    """The backward plan takes the scalars as parameters: after the first steps, a loop
    whose scale and learning rate change every step replays one plan, compiles
    nothing, and its gradients and updates equal torch's step for step."""
    from ember.tracer import plans
    plans.clear()

    def loss(w, s):
        return ((w * s + 1).exp() * w).sum() / s

    w = em.tensor(X, requires_grad=True)
    wt = torch.tensor(X, requires_grad=True)
    seen = []
    for i in range(12):
        s, lr = 0.5 + 0.5 * 0.9 ** (i + 1), 0.01 * 0.95 ** i
        loss(w, s).backward()
        loss(wt, s).backward()
        np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=1e-5)
        with em.no_grad():
            w.sub_(lr * w.grad)
        with torch.no_grad():
            wt.sub_(lr * wt.grad)
        w.grad = wt.grad = None
        seen.append((plans.stats()["learned"], compiles()))
    np.testing.assert_allclose(w.detach().numpy(), wt.detach().numpy(), rtol=1e-5)
    # NOTE: step 1 has no pending update (another key); step 3 confirms step 2's plan
    assert seen[2:] == [seen[2]] * 10, seen
    assert plans.stats()["replayed"] >= 9


def test_a_scale_equal_to_a_backward_rules_constant_is_no_parameter_of_that_rule():
    """erf's gradient multiplies by 2/sqrt(pi): a constant node that a scale of that very
    value shares (constants are hash-consed). A plan learnt while they were equal must
    not give the rule the scale's later values."""
    c = 2 / math.sqrt(math.pi)
    w = em.tensor(X, requires_grad=True)
    for s in (c, c, c, 0.3, 0.7, c, 1.7, 0.9):
        (w.erf() + w * s).sum().backward()
        want = _torch_grad(lambda t, s: (t.erf() + t * s).sum(), X, s)
        np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-5, err_msg=f"s={s}")
        w.grad = None


def test_backward_plans_key_which_scalars_are_equal():
    """Two scalars equal while a plan is learnt, then apart: each keeps its own value."""
    w = em.tensor(X, requires_grad=True)
    for a, b in ((0.3, 0.3), (0.4, 0.4), (0.6, 0.6), (0.3, 0.9), (0.7, 0.2), (0.8, 0.8)):
        (w * a + (w * b).exp()).sum().backward()
        want = _torch_grad(lambda t, a, b: (t * a + (t * b).exp()).sum(), X, a, b)
        np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-5, err_msg=f"{a}, {b}")
        w.grad = None


# -- em.compile ------------------------------------------------------------------------

def readme_step(w, lr):
    loss = ((w - 3) ** 2).sum()
    loss.backward()
    with em.no_grad():
        w.sub_(lr * w.grad)
        w.grad.zero_()
    return loss.detach()


def test_a_decaying_learning_rate_traces_once_per_grad_state():
    step = em.compile(readme_step)
    w = em.tensor([1.0, 2.0, 5.0], requires_grad=True)
    ref = em.tensor([1.0, 2.0, 5.0], requires_grad=True)
    for i in range(101):
        lr = 0.1 * 0.97 ** i
        got = step(w, lr)
        want = readme_step(ref, lr)
        same(got.numpy(), want.numpy())
        same(w.detach().numpy(), ref.detach().numpy())
    # NOTE: the first call has no .grad, the second has one: two signatures
    assert step.traces == 2 and step.hits == 99


def test_a_float_read_in_python_is_guarded_by_value():
    @em.compile
    def f(x, lr):
        if lr > 0.5:
            return x * 2
        return x * lr

    x = em.tensor([1.0, 2.0])
    assert f(x, 0.25).tolist() == [0.25, 0.5]
    assert f(x, 0.75).tolist() == [2.0, 4.0]
    assert f(x, 0.25).tolist() == [0.25, 0.5]
    assert f.traces == 2 and "argument 1 changed: 0.25 -> 0.75" in em.explain(f)


@pytest.mark.parametrize("body", [
    lambda x, lr: x * math.exp(lr),
    lambda x, lr: x * (lr * 2),
    lambda x, lr: x * float(lr),
    lambda x, lr: x * np.float32(lr),
    lambda x, lr: x ** lr,
    lambda x, lr: x * lr + em.tensor([lr, lr]),
    lambda x, lr: x * lr + x * 0.3,
    lambda x, lr: x + em.full((2,), lr, dtype=em.int64),
    lambda x, lr: x + em.tensor([1, 2]).fill_(lr),
    lambda x, lr: x * (em.tensor([1, 2]) > lr),
])
def test_a_float_that_does_not_flow_straight_into_ops_stays_correct(body):
    f = em.compile(body)
    x = em.tensor([1.5, 2.5])
    for lr in (0.3, 0.7, 0.3, 1.0, 0.9, 2.3, 3.6, -1.5, -0.4):
        same(f(x, lr).numpy(), body(x, lr).numpy())


def test_float_arguments_bind_in_order_and_keyword():
    @em.compile
    def f(x, a, b, *, c):
        return (x * a - b) / c

    x = em.tensor([1.0, 2.0, 3.0])
    for a, b, c in [(0.3, 0.7, 1.5), (0.9, 0.1, 2.5), (-4.5, 0.2, 0.3), (1.0, 0.0, 1.0)]:
        same(f(x, a, b, c=c).numpy(), ((x * a - b) / c).numpy())
    assert f.traces <= 2


def test_special_first_values_fall_back_to_value_guards():
    f = em.compile(lambda x, s: x * s)
    x = em.tensor([1.0, 2.0])
    for s in (1.0, 0.5, 0.25, math.nan, math.inf, -0.0, 0.25):
        same(f(x, s).numpy(), (x * s).numpy())


def test_the_recompile_limit_names_a_float_guard_that_kept_failing():
    f = em.compile(lambda x, lr: x * 2 if lr > 0.5 else x * lr, recompile_limit=2)
    x = em.tensor([1.0, 2.0])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for lr in (0.1, 0.2, 0.3):
            same(f(x, lr).numpy(), (x * lr).numpy())
    (limit,) = [w for w in seen if "recompile limit" in str(w.message)]
    assert "argument 1 changed: 0.2 -> 0.3" in str(limit.message)


# -- the tutorial's two-layer network, updated in place -----------------------------------

def two_layer_step(x, y, w1, w2, lr=1e-6):
    h = x.mm(w1)
    h_relu = h.clamp(min=0)
    y_pred = h_relu.mm(w2)
    loss = (y_pred - y).pow(2).sum().item()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.t().mm(grad_y_pred)
    grad_h = grad_y_pred.mm(w2.t()).clone()
    grad_h[h < 0] = 0
    grad_w1 = x.t().mm(grad_h)
    with em.no_grad():
        w1 -= lr * grad_w1
        w2 -= lr * grad_w2
    return loss


def test_the_in_place_loop_hits_the_cache_and_its_walk_does_not_grow():
    from ember.tracer import storage
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s, dtype=np.float32) for s in ((8, 20), (8, 3), (20, 6),
                                                                (6, 3))]
    x, y, w1, w2 = (em.tensor(a) for a in arrays)
    tx, ty, tw1, tw2 = (torch.tensor(a) for a in arrays)
    walked = []
    for step in range(60):
        loss = two_layer_step(x, y, w1, w2, 1e-3)
        want = two_layer_step(tx, ty, tw1, tw2, 1e-3)
        assert loss == pytest.approx(want, rel=1e-4)
        walked.append(storage.walked[0])
        if step == 3:
            misses = cache.stats().misses
    assert cache.stats().misses == misses  # every step after the first few: a hit
    # NOTE: the walk stops at values already computed: it once went down every earlier
    # step's graph, one step longer each step
    assert walked[-1] == walked[10]
    np.testing.assert_allclose(w1.numpy(), tw1.numpy(), rtol=1e-4, atol=1e-5)


def test_a_parameter_that_max_reads_is_filled_once_per_call():
    """max/min with a runtime parameter read a tile-sized fill of it (NumPy's loop over
    a stride-0 operand is the slow one), made once per call, with the call's value."""
    x = em.tensor(np.linspace(-2, 2, 300_000).astype(np.float32))
    for s in (0.3, -0.7, 1.3):
        got = em.maximum(x * 1.5, s).numpy()
        np.testing.assert_array_equal(got, np.maximum(x.numpy() * np.float32(1.5),
                                                      np.float32(s)))
    from ember.runtime.compiled import compiled_for
    source = compiled_for(em.maximum(x * 1.5, 0.3)).source
    assert "np.full(" in source and "params[" in source
