"""Backward plans (tracer/plans.py): a replayed backward pass equals the general one.

Each loop runs twice from the same start, with plans and with `EMBER_PLANS=0`
(every pass general); parameters and gradients must agree bit for bit after
every step, and the loop with plans must really replay them. Random losses over
a few leaves check the same for structures no one wrote by hand, and passes a
plan must not serve (retain_grad, an explicit gradient, create_graph, a stale
record) must behave as the general pass does.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember.runtime import options
from ember.tracer import plans


@pytest.fixture(autouse=True)
def _fresh():
    saved = options.plans
    plans.clear()
    yield
    options.plans = saved


def _arr(t):
    return None if t is None else np.array(t.detach().numpy())


def rosenbrock(p, data):
    x, y = p["x"], p["y"]
    return (1.0 - x) ** 2 + 5.0 * (y - x ** 2) ** 2


def rosenbrock_indexed(p, data):
    v = p["v"]
    return (1 - v[0]) ** 2 + 5 * (v[1] - v[0] ** 2) ** 2


def linear_regression(p, data):
    X, y = data
    return ((X @ p["w"] + p["b"] - y) ** 2).mean()


def mlp(p, data):
    X, labels = data
    h = (X @ p["w1"] + p["b1"]).relu()
    logp = (h @ p["w2"] + p["b2"]).log_softmax(dim=1)
    return -(logp * labels).sum(dim=1).mean()


def shared_and_reused(p, data):
    x, y = p["x"], p["y"]
    z = x * x + x * y + y.exp() * x
    return (z * z).sum() + x.abs().max() + em.where(y > 0, y, -y).sum()


def frozen_input(p, data):
    (c,) = data  # no grad: an input, not a leaf
    return ((p["x"] * c).tanh() + c.sigmoid() * p["x"]).sum()


LOOPS = {
    "rosenbrock": (rosenbrock, lambda r: {"x": r.normal(), "y": r.normal()}, None),
    "rosenbrock_indexed": (rosenbrock_indexed, lambda r: {"v": r.normal(size=2)}, None),
    "linear_regression": (
        linear_regression, lambda r: {"w": r.normal(size=3), "b": r.normal()},
        lambda r: (r.normal(size=(16, 3)), r.normal(size=16))),
    "mlp": (
        mlp, lambda r: {"w1": r.normal(size=(5, 8)) * 0.3, "b1": np.zeros(8),
                        "w2": r.normal(size=(8, 3)) * 0.3, "b2": np.zeros(3)},
        lambda r: (r.normal(size=(6, 5)), np.eye(3)[r.integers(0, 3, 6)])),
    "shared_and_reused": (shared_and_reused,
                          lambda r: {"x": r.normal(size=4), "y": r.normal(size=4)}, None),
    "frozen_input": (frozen_input, lambda r: {"x": r.normal(size=(2, 3))},
                     lambda r: (r.normal(size=(2, 3)),)),
}


def _setup(loop: str):
    """(loss function, parameters, data) of `loop`, drawn from seed 0."""
    loss_fn, make_params, make_data = LOOPS[loop]
    rng = np.random.default_rng(0)
    params = {k: em.tensor(np.asarray(v, dtype=np.float32), requires_grad=True)
              for k, v in make_params(rng).items()}
    data = tuple(em.tensor(np.asarray(a, dtype=np.float32)) for a in make_data(rng)) \
        if make_data else ()
    return loss_fn, params, data


def _train(loop: str, use_plans: bool, steps: int, zero: str, lr: float = 0.01):
    """The parameters and gradients after each step of `loop`."""
    options.plans = use_plans
    loss_fn, params, data = _setup(loop)
    history = []
    for _ in range(steps):
        loss = loss_fn(params, data)
        loss.backward()
        history.append([_arr(p.grad) for p in params.values()])
        with em.no_grad():
            for p in params.values():
                p -= lr * p.grad
        for p in params.values():
            if zero == "none":
                p.grad = None
            elif zero == "zero_":
                p.grad.zero_()
            # "keep": gradients accumulate over the steps
        history.append([_arr(p) for p in params.values()])
    return history


@pytest.mark.parametrize("zero", ["none", "zero_", "keep"])
@pytest.mark.parametrize("loop", list(LOOPS))
def test_replayed_steps_equal_the_general_pass(loop, zero):
    general = _train(loop, False, 6, zero)
    assert plans.stats()["replayed"] == 0
    planned = _train(loop, True, 6, zero)
    assert plans.stats()["replayed"] >= 3, "the loop should replay its plans"
    for step, (a, b) in enumerate(zip(general, planned)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y, err_msg=f"step {step // 2}")


UNARY = ["exp", "tanh", "sigmoid", "sin", "abs", "relu"]


def _random_loss(seed: int):
    """A random loss over leaves a, b, c (a fixed structure per seed)."""
    r = np.random.default_rng(seed)
    plan = [(r.integers(0, 5), r.integers(0, 3), r.integers(0, 3), UNARY[r.integers(0, 6)])
            for _ in range(r.integers(3, 9))]

    def loss(a, b, c):
        vals = [a, b, c]
        for kind, i, j, fn in plan:
            x, y = vals[i % len(vals)], vals[j % len(vals)]
            if kind == 0:
                v = x * y
            elif kind == 1:
                v = x + 0.5 * y
            elif kind == 2:
                v = getattr(x, fn)()
            elif kind == 3:
                v = x - y.sum()
            else:
                v = (x * x).mean(dim=0, keepdim=True) + y
            vals.append(v)
        return sum(v.sum() for v in vals[3:])
    return loss


@pytest.mark.parametrize("seed", range(24))
def test_random_losses_replay_exactly(seed):
    loss = _random_loss(seed)
    rng = np.random.default_rng(seed)
    start = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(3)]
    results = {}
    for use_plans in (False, True):
        options.plans = use_plans
        leaves = [em.tensor(a, requires_grad=True) for a in start]
        out = []
        for step in range(3):
            # the leaves take turns: the same structure over other tensors
            order = leaves[step % 3:] + leaves[:step % 3]
            loss(*order).backward()
            out.append([_arr(x.grad) for x in leaves])
        results[use_plans] = out
    assert plans.stats()["replayed"] >= 1
    for a, b in zip(results[False], results[True]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_same_structure_over_swapped_leaves():
    x = em.tensor(1.0, requires_grad=True)
    y = em.tensor(2.0, requires_grad=True)
    (x * 2.0 + y * 3.0).backward()
    x.grad = y.grad = None
    (y * 2.0 + x * 3.0).backward()  # the same structure: its plan must map leaves right
    assert plans.stats()["replayed"] == 1
    assert x.grad.item() == 3.0 and y.grad.item() == 2.0


def test_passes_a_plan_does_not_serve():
    x = em.tensor([1.0, 2.0], requires_grad=True)

    def loss():
        return (x * x).sum()
    for _ in range(3):
        loss().backward()
    replayed = plans.stats()["replayed"]
    assert replayed >= 1
    # retain_grad on an intermediate, an explicit gradient, create_graph: general passes
    h = x * x
    h.retain_grad()
    h.sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), [1.0, 1.0])
    (x * x).sum().backward(em.tensor(2.0))
    (x * x).sum().backward(create_graph=True)
    assert plans.stats()["replayed"] == replayed
    # a record whose input was changed in place still raises PyTorch's error
    z = x * 1.0
    w = (z * z).sum()
    z.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        w.backward()


def test_backward_twice_without_retain_graph_still_raises():
    x = em.tensor(3.0, requires_grad=True)
    for _ in range(2):
        (x * x).backward()
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_plans_live_in_the_bounded_compiled_graph_cache():
    from ember.runtime import cache
    x = em.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        (x * x + 1.0).sum().backward()
        x.grad = None
    assert plans.stats() == {"replayed": 2, "learned": 1}
    assert sum(1 for k in cache.memory.entries if k[0] == "plan") == 1
    cache.clear()  # forgets plans with everything else
    (x * x + 1.0).sum().backward()
    assert plans.stats()["learned"] == 2
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_random_draws_and_dtypes_replay_exactly(dtype):
    """A forward pass that draws random numbers (a dropout mask) replays with fresh
    draws each step, as the general pass does, in every float dtype."""
    results = {}
    for use_plans in (False, True):
        options.plans = use_plans
        em.manual_seed(7)
        w = em.tensor(np.linspace(-1, 1, 8), dtype=getattr(em, dtype), requires_grad=True)
        out = []
        for _ in range(4):
            mask = (em.rand(8) > 0.5).to(w.dtype)
            ((w * mask).tanh() * w).sum().backward()
            out.append(_arr(w.grad.float()))
            with em.no_grad():
                w -= 0.1 * w.grad
            w.grad = None
        results[use_plans] = out
    assert plans.stats()["replayed"] >= 2
    for a, b in zip(results[False], results[True]):
        np.testing.assert_array_equal(a, b)


def test_parameters_shared_with_numpy_are_updated_in_place():
    results = {}
    for use_plans in (False, True):
        options.plans = use_plans
        memory = np.array([0.5, -1.0, 2.0], dtype=np.float32)
        w = em.from_numpy(memory).requires_grad_()
        for _ in range(4):
            ((w * w).exp() - w).sum().backward()
            with em.no_grad():
                w -= 0.01 * w.grad
            w.grad = None
        em.realize(w)
        results[use_plans] = memory.copy()  # ember wrote the updates into this memory
    assert plans.stats()["replayed"] >= 2
    np.testing.assert_array_equal(results[False], results[True])
    assert not np.array_equal(results[True], [0.5, -1.0, 2.0])


@pytest.mark.parametrize("loop", ["rosenbrock_indexed", "mlp", "shared_and_reused"])
def test_steps_that_print_their_loss_replay_exactly(loop):
    """A loss realised before backward (`loss.item()` for a log line, on some steps)
    is an input of the plan; the values below it are computed again from the leaves."""
    results = {}
    for use_plans in (False, True):
        options.plans = use_plans
        loss_fn, params, data = _setup(loop)
        out = []
        for step in range(6):
            loss = loss_fn(params, data)
            if step % 3 != 1:
                out.append(loss.item())
            loss.backward()
            with em.no_grad():
                for p in params.values():
                    p -= 0.01 * p.grad
                    p.grad.zero_()
            out.extend(_arr(p) for p in params.values())
        results[use_plans] = out
    assert plans.stats()["replayed"] >= 2
    for a, b in zip(results[False], results[True]):
        np.testing.assert_array_equal(a, b)


# Pairs of graphs of one shape and dtype that differ in one op or one arg: each
# element reads `x` (3 x 3, float32) and gives a 3 x 3 float32 result, in ember or
# in torch (`_lib` picks the module). Every graph below must get its own key, with
# or without its value computed before backward(), and its own gradient.
def _lib(x):
    if isinstance(x, em.Tensor):
        return em
    import torch
    return torch


def _op(name):
    return lambda x: getattr(_lib(x), name)(x)


def _via(name):
    return lambda x: x.to(getattr(_lib(x), name)).to(_lib(x).float32)


VARIANTS = {
    "op": [_op(name) for name in ("exp", "sin", "cos", "tanh", "abs", "neg", "sigmoid",
                                  "relu", "square", "sqrt")],
    "const": [lambda x: x * 2.0, lambda x: x * 3.0, lambda x: x + 0.0, lambda x: x + -0.0,
              lambda x: x ** 2, lambda x: x ** 3],
    "clamp": [lambda x: x.clamp(min=0.0), lambda x: x.clamp(min=0.5),
              lambda x: x.clamp(max=0.5)],
    "axis": [lambda x: x.softmax(0), lambda x: x.softmax(1), lambda x: x.cumsum(0),
             lambda x: x.cumsum(1), lambda x: x.flip(0), lambda x: x.flip(1),
             lambda x: x - x.sum(0, keepdim=True), lambda x: x - x.sum(1, keepdim=True)],
    "shape": [lambda x: x.reshape(9).reshape(3, 3) * 2, lambda x: x.reshape(1, 9).reshape(3, 3) * 2,
              lambda x: x.reshape(9)[:3].expand(3, 3), lambda x: x.reshape(9)[3:6].expand(3, 3)],
    "dtype": [_via("float64"), _via("float16"), _via("bfloat16")],
    # NOTE: -1 is keyed by value (1.5 would be a runtime parameter, as 3.0 above is)
    "view": [lambda x: x * -1.0, lambda x: x.t() * -1.0, lambda x: x.flip(0).t() * -1.0,
             lambda x: x[:, [2, 0, 1]], lambda x: x[[1, 2, 0]]],
}
ALL_VARIANTS = [(group, i) for group, fs in VARIANTS.items() for i in range(len(fs))]
X0 = np.array([[0.5, 1.0, 2.0], [-0.3, 0.7, 1.1], [0.2, 1.9, 0.4]], dtype=np.float32)


def _probe_key(f, read_first: bool):
    """The plan key of `f(x).sum().backward()` (x fresh), after reading f(x) if asked."""
    x = em.tensor(X0, requires_grad=True)
    seen = f(x) if read_first else None
    if read_first:
        # a metric printed before backward(), and kept: the node's value is known
        seen.detach().numpy()
    out = f(x)
    p = plans.probe((out * em.tensor(X0)).sum())
    assert p is not None
    return p.key, out


@pytest.mark.parametrize("read_first", [False, True])
def test_graphs_differing_in_one_op_or_arg_get_distinct_keys(read_first):
    from ember.runtime import cache
    plan_keys, structure_keys = {}, {}
    for group, i in ALL_VARIANTS:
        f = VARIANTS[group][i]
        key, out = _probe_key(f, read_first)
        assert out.shape == (3, 3) and out.dtype == em.float32, (group, i)
        assert key not in plan_keys, f"{(group, i)} shares a plan key with {plan_keys[key]}"
        plan_keys[key] = (group, i)
        if not read_first:  # (a computed value is an input of the forward program)
            skey = cache.structure([(out * 2).sum().node])[0]
            assert skey not in structure_keys, (group, i, structure_keys[skey])
            structure_keys[skey] = (group, i)
        # the same graph built again has the same key (so plans do replay)
        assert _probe_key(f, read_first)[0] == key


def _grads(f, x0, read_first: bool, backend: str):
    """x.grad of `(f(x) * w).sum().backward()` in ember (or torch)."""
    if backend == "torch":
        import torch
        x = torch.tensor(x0, requires_grad=True)
        f(x).mul(torch.tensor(x0)).sum().backward()
        return x.grad.numpy()
    x = em.tensor(x0, requires_grad=True)
    seen = f(x) if read_first else None
    if read_first:
        seen.detach().numpy()  # kept alive: its value is known when backward() runs
    (f(x) * em.tensor(x0)).sum().backward()
    return x.grad.numpy()


@pytest.mark.parametrize("read_first", [False, True])
def test_many_programs_in_one_process_get_their_own_gradients(read_first):
    """Every variant, one after another, twice over (the second round replays
    plans): gradients as torch's and as the general pass's (plans off)."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for rnd in range(2):
        for group, i in ALL_VARIANTS:
            f = VARIANTS[group][i]
            x0 = (X0 + rng.uniform(0.01, 0.1, X0.shape)).astype(np.float32)
            options.plans = True
            got = _grads(f, x0, read_first, "ember")
            options.plans = False
            general = _grads(f, x0, read_first, "ember")
            want = _grads(f, x0, read_first, "torch")
            where = f"round {rnd}, {group} variant {i}"
            np.testing.assert_array_equal(got, general, err_msg=where)
            np.testing.assert_allclose(got, want, rtol=2e-2 if group == "dtype" else 1e-5,
                                       atol=1e-6, err_msg=where)
    assert plans.stats()["replayed"] >= len(ALL_VARIANTS)


@pytest.mark.parametrize("fs", [("exp", "sin"), ("abs", "neg")])
def test_a_kept_result_does_not_hand_its_plan_to_another_function(fs):
    """`out = f(x); print(out); f(x).sum().backward()` for two functions in turn:
    the second must not replay the first one's gradient."""
    torch = pytest.importorskip("torch")
    for name in fs:
        x = em.tensor([0.5, -1.0, 2.0], requires_grad=True)
        out = getattr(em, name)(x)
        repr(out)
        getattr(em, name)(x).sum().backward()
        tx = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
        getattr(torch, name)(tx).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("seed", range(3))
def test_composed_programs_one_after_another(seed):
    """Seeded chains of two or three variants, run one after another without
    clearing any cache, some reading a value before backward(): gradients equal
    the general pass's bit for bit, and torch's."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    for _ in range(12):
        chain = [ALL_VARIANTS[k] for k in rng.integers(0, len(ALL_VARIANTS), rng.integers(2, 4))]

        def f(x, chain=chain):
            for group, i in chain:
                x = VARIANTS[group][i](x)
            return x
        read_first = bool(rng.integers(0, 2))
        x0 = rng.uniform(0.1, 1.0, (3, 3)).astype(np.float32)
        results = []
        for use_plans in (True, False, True):  # the second run with plans replays
            options.plans = use_plans
            results.append(_grads(f, x0, read_first, "ember"))
        want = _grads(f, x0, read_first, "torch")
        where = f"chain {chain}, read first: {read_first}"
        np.testing.assert_array_equal(results[0], results[1], err_msg=where)
        np.testing.assert_array_equal(results[2], results[1], err_msg=where)
        loose = any(group == "dtype" for group, _ in chain)
        np.testing.assert_allclose(results[0], want, rtol=3e-2 if loose else 1e-4,
                                   atol=1e-3 if loose else 1e-5, equal_nan=True, err_msg=where)
