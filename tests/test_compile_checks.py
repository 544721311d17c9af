"""em.compile(fn, check=True) (a missed guard) and check="fp64" (float64 reference)."""

import inspect
import warnings

import numpy as np
import pytest

import ember as em
from ember.tracer import checks

RNG = np.random.default_rng(0)
FLAG = False


def _line_of(fn, text: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


# -- check=True ----------------------------------------------------------------------

def flagged(x):
    y = x * 2
    if FLAG:
        y = y + 1
    return y.sum()


def test_check_catches_missing_guard():
    global FLAG
    f = em.compile(flagged, check=True)
    x = em.tensor([1.0, 2.0, 3.0])
    assert [f(x).item() for _ in range(3)] == [12.0] * 3
    assert f.traces == 1 and f.checks == 2
    FLAG = True
    try:
        with pytest.raises(em.CheckError) as info:
            f(x)
    finally:
        FLAG = False
    message = str(info.value)
    assert "flagged" in message and "y = y + 1" in message
    assert f":{_line_of(flagged, 'y = y + 1')}:" in message


def test_check_is_silent_and_writes_back_once():
    class State:
        def __init__(self):
            self.w = em.tensor([1.0, 2.0], requires_grad=True)

    def step(s, x):
        loss = (x * s.w).sum()
        loss.backward()
        with em.no_grad():
            s.w.sub_(0.5 * s.w.grad)
            s.w.grad.zero_()
        return loss.detach()

    plain, checked = State(), State()
    f = em.compile(lambda x: step(checked, x), check=True)
    x = em.tensor([1.0, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            want = step(plain, x)
            got = f(x)
            np.testing.assert_allclose(got.numpy(), want.numpy())
            np.testing.assert_allclose(checked.w.detach().numpy(), plain.w.detach().numpy())
            np.testing.assert_allclose(checked.w.grad.numpy(), plain.w.grad.numpy())
    assert f.traces == 2 and f.checks == 3  # the second call sees a .grad: traced again


def test_check_samples_after_the_first_calls():
    f = em.compile(lambda x: x + 1, check=True)
    x = em.ones(2)
    for _ in range(checks.CHECK_EVERY + 1):
        f(x)
    assert f.checks == checks.CHECK_EVERY


def test_check_rejects_bad_values():
    with pytest.raises(ValueError, match="check must be"):
        em.compile(lambda x: x, check="fp32")
    with pytest.raises(ValueError, match="check must be"):
        em.compile(lambda x: x, check=2)


# -- check="fp64" --------------------------------------------------------------------

def softmax_bad(x):
    e = x.exp()
    return e / e.sum(-1, keepdim=True)


def softmax_good(x):
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def layer_norm_bad(x):
    mean = x.mean(-1, keepdim=True)
    var = (x * x).mean(-1, keepdim=True) - mean * mean
    return (x - mean) / (var + 1e-5).sqrt()


def layer_norm_good(x):
    mean = x.mean(-1, keepdim=True)
    d = x - mean
    var = (d * d).mean(-1, keepdim=True)
    return d / (var + 1e-5).sqrt()


SOFTMAX_X = RNG.normal(8, 2, (4, 256)).astype(np.float16)
NORM_X = RNG.normal(10, 1, (4, 256)).astype(np.float16)


@pytest.mark.parametrize("bad, good, data, text", [
    (softmax_bad, softmax_good, SOFTMAX_X, "e = x.exp()"),
    (layer_norm_bad, layer_norm_good, NORM_X, "var = (x * x).mean"),
])
def test_fp64_points_at_the_bad_formulation(bad, good, data, text):
    x = em.tensor(data)
    f = em.compile(bad, check="fp64")
    with pytest.warns(UserWarning, match="over budget"):
        out = f(x)
    np.testing.assert_array_equal(out.numpy(), em.compile(bad)(x).numpy())
    report = f.last_check
    assert isinstance(report, em.CheckReport) and not report.ok
    assert report.outputs[0].compiled > report.outputs[0].budget
    assert report.kernel is not None and report.kernel.startswith("k")
    assert report.line == (__file__, _line_of(bad, text))
    assert text in str(report) and report.kernel in str(report)

    g = em.compile(good, check="fp64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g(x)
        g(x)
    assert g.last_check.ok and g.last_check.kernel is None
    assert g.last_check.outputs[0].compiled <= checks.budget(em.float16, 256)


def test_fp64_reports_every_float_output():
    w = em.tensor(RNG.normal(size=(8,)).astype(np.float32), requires_grad=True)

    @em.compile(check="fp64")
    def step(x):
        loss = (x * w).tanh().sum()
        loss.backward()
        with em.no_grad():
            w.sub_(0.1 * w.grad)
        return loss.detach(), x.argmax()

    step(em.tensor(RNG.normal(size=(8,)).astype(np.float32)))
    report = step.last_check
    names = [o.name for o in report.outputs]
    assert "returned value 0" in names and any("captured" in n for n in names)
    assert report.ok and all(o.compiled < 1e-5 for o in report.outputs)
    assert "within budget" in str(report)


def test_budget_grows_with_reduction_length():
    assert checks.budget(em.float16) == pytest.approx(4 * 2.0 ** -10, rel=1e-3)
    assert checks.budget(em.float32, 4096) > checks.budget(em.float32, 16)
    assert checks.budget(em.float32) < 1e-5


def test_fp64_replays_the_calls_random_draws():
    f = em.compile(lambda x: (x * em.rand(64) + em.randn(64)).exp(), check="fp64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):  # each call draws new numbers: the check uses the same ones
            f(em.ones(64))
            assert f.last_check.ok and f.last_check.outputs[0].compiled < 1e-6
