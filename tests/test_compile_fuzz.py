"""The em.compile fuzzer (tests/fuzz/compile.py): a CI lane, a long lane, and the
programs it found, kept as regression tests (each fails without its fix)."""

import os
import warnings

import numpy as np
import pytest

import ember as em
from tests.fuzz import compile as fuzz_compile

CI_PROGRAMS = 300


def _run(n: int, seed: int) -> None:
    failures, stats = fuzz_compile.fuzz(n, seed, shrink_failures=False)
    reports = [fuzz_compile.report(case, case, diffs) for case, _, diffs in failures[:3]]
    assert not failures, f"{stats}\n\n" + "\n\n".join(reports)
    assert stats["programs"] >= n * 0.9


def test_compile_fuzz_ci_lane():
    _run(CI_PROGRAMS, 0)


@pytest.mark.slow
def test_compile_fuzz_long_lane():
    _run(int(os.environ.get("EMBER_COMPILE_FUZZ_PROGRAMS", "3000")), 100_000)


def test_case_source_runs():
    case = next(c for c in map(fuzz_compile.case_for, range(20)) if c is not None and
                c.captured)
    text = case.source()
    assert "def make(M, S):" in text and "S." in text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(text, "<case>", "exec"), {"print": lambda *a: None})  # noqa: S102


# -- what the fuzzer found ---------------------------------------------------------

class _State:
    pass


def _quiet(f, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args)


def test_rebinding_an_attribute_while_the_old_tensor_lives():
    s = _State()
    s.w = em.tensor([1.0, 2.0])
    f = em.compile(lambda x: x * s.w)
    x = em.ones(2)
    assert f(x).tolist() == [1.0, 2.0]
    old = s.w  # noqa: F841 - the old tensor stays alive
    s.w = em.tensor([5.0, 6.0])
    assert f(x).tolist() == [5.0, 6.0]
    assert "the tensor bound to 's.w' changed" in em.explain(f)


def test_rebinding_a_view_in_a_container():
    s = _State()
    s.params = [em.arange(4.0).reshape((2, 2))]
    f = em.compile(lambda: s.params[0].reshape((4,)))
    assert f().tolist() == [0.0, 1.0, 2.0, 3.0]
    old = s.params[0]  # noqa: F841
    s.params[0] = em.arange(4.0, 8.0).reshape((2, 2))
    assert f().tolist() == [4.0, 5.0, 6.0, 7.0]


def test_returned_size_is_rebuilt():
    f = em.compile(lambda x: (x * 2, x.shape))
    x = em.ones(2, 3)
    for _ in range(2):
        out, shape = f(x)
        assert isinstance(shape, em.Size) and shape == (2, 3)


def test_result_of_a_consumed_graph_requires_grad():
    w = em.tensor([1.0, 2.0], requires_grad=True)

    def step(x):
        y = x * w
        y.sum().backward()
        return y

    f = em.compile(step)
    for _ in range(2):
        y = f(em.ones(2))
        assert y.requires_grad and not y.is_leaf and y.grad_fn.name() == "MulBackward0"
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            y.sum().backward()


def test_returned_view_of_a_captured_tensor_is_its_view():
    s = _State()
    s.w = em.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)

    def step():
        v = s.w[0]
        v.exp().sum().backward()
        return v

    f = em.compile(step)
    for _ in range(2):
        v = f()
        assert v.requires_grad and v._base is s.w
    np.testing.assert_allclose(s.w.grad.numpy()[0], 2 * np.exp([1.0, 2.0]), rtol=1e-6)


def test_backward_of_a_captured_leaf_alone():
    s = _State()
    s.w = em.tensor(2.0, requires_grad=True)

    def step():
        s.w.backward()
        return s.w * 1

    f = em.compile(step)
    for i in range(3):
        _quiet(f)
        assert s.w.grad.item() == i + 1
    old = s.w  # noqa: F841
    s.w = em.tensor(3.0, requires_grad=True)
    _quiet(f)
    assert s.w.grad.item() == 1.0 and old.grad.item() == 3.0


def test_in_place_history_on_an_input_runs_uncompiled():
    w = em.tensor([2.0], requires_grad=True)
    plain, compiled = em.tensor([4.0, 6.0]), em.tensor([4.0, 6.0])

    def step(c):
        c.div_(w)
        (c * c).sum().backward()
        return c.detach()

    f = em.compile(step)
    want = step(plain)
    with pytest.warns(UserWarning, match="autograd history"):
        got = f(compiled)
    assert got.tolist() == want.tolist()
    assert compiled.requires_grad and compiled.grad_fn is not None


def test_a_mask_from_a_captured_pending_tensor_is_a_graph_break():
    s = _State()
    s.v = em.arange(3, dtype=em.int32).reshape((3,))  # pending: realised while tracing

    def step():
        s.v.neg_()
        y = s.v + 1.0
        return y[y > 0]

    f = em.compile(step)
    with pytest.warns(UserWarning, match="graph break"):
        assert f().tolist() == [1.0]
    assert f().tolist() == [1.0, 2.0, 3.0]


def test_an_argument_requiring_grad_through_its_base_runs_uncompiled():
    w = em.tensor(0.25, requires_grad=True)

    def step(v):
        v[0, 1:] = w  # an empty region: v now requires grad through its base
        return v * 2

    v = em.arange(3, dtype=em.float32).reshape((3, 1))
    f = em.compile(step)
    for _ in range(3):
        assert _quiet(f, v).tolist() == [[0.0], [2.0], [4.0]]
    assert "requires grad and is not a leaf" in em.explain(f)


def test_returned_views_and_leaves_of_a_consumed_graph_require_grad():
    w = em.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)

    def step(x):
        y = x @ w
        v = y[0:1]
        v[0:1] = w.sum()  # y now requires grad through a write into its view
        y.sum().backward()
        return y, v, em.zeros(2, requires_grad=True)

    f = em.compile(step)
    want = step(em.ones(2, 2))
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # NOTE: it compiles (what y saved is no escape)
            got = f(em.ones(2, 2))
        assert [t.requires_grad for t in got] == [t.requires_grad for t in want] == [True] * 3
        assert got[2].is_leaf and not got[1].is_leaf


def test_returned_view_that_retains_its_grad():
    def step(v):
        u = v[::2]
        u.retain_grad()
        (u * u).sum().backward()
        return u

    want = step(em.tensor([1.0, 2.0, 3.0], requires_grad=True))
    f = em.compile(step)
    for _ in range(2):
        got = f(em.tensor([1.0, 2.0, 3.0], requires_grad=True))
        assert got.grad is not None and got.grad.tolist() == want.grad.tolist() == [2.0, 6.0]


def test_reading_a_captured_tensor_through_detach_is_a_graph_break():
    s = _State()
    s.v = em.zeros(3)  # pending: nothing reads it as a node before .numpy()
    f = em.compile(lambda: s.v.detach().numpy().copy())
    with pytest.warns(UserWarning, match="graph break"):
        assert f().tolist() == [0.0, 0.0, 0.0]
    s.v.add_(1)
    assert f().tolist() == [1.0, 1.0, 1.0]


def test_a_detached_alias_given_history_by_copy_requires_grad():
    def step(v):
        y = v.exp()
        d = y.detach()
        d.copy_(v)  # d requires grad again
        v.log1p().sum().backward()
        return d

    want = step(em.tensor([1.0, 2.0], requires_grad=True))
    f = em.compile(step)
    for _ in range(2):
        got = _quiet(f, em.tensor([1.0, 2.0], requires_grad=True))
        assert got.requires_grad == want.requires_grad is True


@pytest.mark.parametrize("seed", [30942, 31396, 32256, 32470, 32498])
def test_found_programs_pass(seed):
    # NOTE: 30942: a captured view's record, rebuilt while tracing, was left behind
    # 31396, 32470: float64 values cast from float32 ones compared at float32's tolerance;
    # 32256: numpy() while tracing; 32498: a broadcast of 1 to an empty axis in one kernel
    assert fuzz_compile.check_case(fuzz_compile.case_for(seed)) == []
