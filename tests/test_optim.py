"""em.optim and em.optim.lr_scheduler against torch.optim, step for step.

Every optimizer trains the same tiny linear model (plain tensors that require grad)
on the same data from the same initial values as torch's, and the parameters must
agree after every one of 20 steps. The step's cost contract is checked through the
runtime's counters: one program run per group per step, and no compile after the
first steps however the learning rate and step count change.
"""

from __future__ import annotations

import copy
import pickle
import types
import warnings

import numpy as np
import pytest

import ember as em
from ember.runtime import cache
from ember.runtime.execute import counts as run_stats
from ember.tracer.compile import _STATE_EPOCH

torch = pytest.importorskip("torch")

STEPS = 20
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


def _data(dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((3, 4)).astype(dtype),
            "b": rng.standard_normal(3).astype(dtype),
            "x": rng.standard_normal((8, 4)).astype(dtype),
            "y": rng.standard_normal((8, 3)).astype(dtype)}


def _loss(lib, w, b, x, y):
    return ((x @ w.T + b - y) ** 2).mean() + (w ** 4).sum() * 0.01


def _groups(w, b, opts):
    """Two param groups (w with opts[0], b with opts[1]) or one group of both."""
    if isinstance(opts, dict):
        return [w, b], opts
    (g0, g1), defaults = opts
    return [dict(params=[w], **g0), dict(params=[b], **g1)], defaults


def _trainers(name: str, opts, dtype: str):
    """(ember params, ember step), (torch params, torch step) on the same data."""
    data = _data(dtype)
    out = []
    for lib in (em, torch):
        w = lib.tensor(data["w"], requires_grad=True)
        b = lib.tensor(data["b"], requires_grad=True)
        x, y = lib.tensor(data["x"]), lib.tensor(data["y"])
        groups, defaults = _groups(w, b, opts)
        opt = getattr(lib.optim, name)(groups, **defaults)

        def step(lib=lib, w=w, b=b, x=x, y=y, opt=opt):
            opt.zero_grad()
            _loss(lib, w, b, x, y).backward()
            opt.step()
        out.append(((w, b), opt, step))
    return out


def _same(ours, theirs, dtype: str, what: str = "") -> None:
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), t.detach().numpy(), **TOL[dtype],
                                   err_msg=what)


CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("SGD", (([dict(momentum=0.9, nesterov=True), dict(lr=0.01, weight_decay=0.2)]),
             dict(lr=0.05))),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True, amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9))),  # lerp's other form (weight >= 0.5)
    ("Adam", (([dict(amsgrad=True), dict(lr=0.05, betas=(0.5, 0.9), weight_decay=0.3)]),
              dict(lr=0.01))),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True, maximize=True)),
    ("AdamW", (([dict(weight_decay=0.0), dict(lr=0.05, weight_decay=0.5)]), dict(lr=0.01))),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, maximize=True, eps=1e-4)),
    ("RMSprop", (([dict(centered=True), dict(lr=0.02, momentum=0.7, alpha=0.3)]),
                 dict(lr=0.01))),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, maximize=True, eps=1e-3)),
    ("Adagrad", (([dict(lr_decay=0.1), dict(lr=0.3, weight_decay=0.2)]), dict(lr=0.1))),
]


@pytest.mark.parametrize("name,opts", CASES, ids=[f"{n}-{i}" for i, (n, _) in
                                                  enumerate(CASES)])
def test_every_step_equals_torchs(name, opts):
    (ours, _, step), (theirs, _, tstep) = _trainers(name, opts, "float32")
    for i in range(STEPS):
        step()
        tstep()
        _same(ours, theirs, "float32", f"step {i + 1}")


@pytest.mark.parametrize("name,opts", [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
])
def test_float64_steps_equal_torchs_closely(name, opts):
    (ours, _, step), (theirs, _, tstep) = _trainers(name, opts, "float64")
    for i in range(STEPS):
        step()
        tstep()
        _same(ours, theirs, "float64", f"step {i + 1}")


@pytest.mark.parametrize("name,opts", [
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.1)),
])
def test_eager_mode_steps_equal_torchs(name, opts):
    with em.eager():
        (ours, _, step), (theirs, _, tstep) = _trainers(name, opts, "float32")
        for i in range(8):
            step()
            tstep()
            _same(ours, theirs, "float32", f"step {i + 1}")


@pytest.mark.parametrize("name,opts", [
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1)),
])
def test_a_state_dict_loaded_mid_run_gives_identical_next_steps(name, opts):
    (ours, opt, step), (theirs, topt, tstep) = _trainers(name, opts, "float32")
    for _ in range(5):
        step()
        tstep()
    saved = opt.state_dict()
    tsaved = topt.state_dict()
    assert sorted(saved["state"]) == sorted(tsaved["state"]) == [0, 1]
    assert saved["param_groups"] == tsaved["param_groups"]
    for k, st in saved["state"].items():
        assert list(st) == list(tsaved["state"][k])
        for key, v in st.items():
            np.testing.assert_allclose(v.numpy(), tsaved["state"][k][key].numpy(), rtol=1e-5,
                                       atol=1e-6)
    # a fresh optimizer over copies of the parameters, loaded with the state
    w2, b2 = (em.tensor(p.detach().numpy(), requires_grad=True) for p in ours)
    data = _data("float32")
    x, y = em.tensor(data["x"]), em.tensor(data["y"])
    groups, defaults = _groups(w2, b2, opts)
    opt2 = getattr(em.optim, name)(groups, **defaults)
    opt2.load_state_dict(saved)
    for _ in range(5):
        step()
        opt2.zero_grad()
        _loss(em, w2, b2, x, y).backward()
        opt2.step()
        np.testing.assert_array_equal(w2.detach().numpy(), ours[0].detach().numpy())
        np.testing.assert_array_equal(b2.detach().numpy(), ours[1].detach().numpy())


def test_load_state_dict_refuses_a_mismatched_layout():
    w, b = em.zeros(2, requires_grad=True), em.zeros(3, requires_grad=True)
    opt = em.optim.SGD([w, b], lr=0.1)
    other = em.optim.SGD([{"params": [w]}, {"params": [b]}], lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        em.optim.SGD([w], lr=0.1).load_state_dict(opt.state_dict())


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    w = em.ones(3, requires_grad=True)
    tw = torch.ones(3, requires_grad=True)
    opt, topt = em.optim.SGD([w], lr=0.1), torch.optim.SGD([tw], lr=0.1)
    (w * 2).sum().backward()
    (tw * 2).sum().backward()
    held = w.grad
    opt.zero_grad(set_to_none=set_to_none)
    topt.zero_grad(set_to_none=set_to_none)
    if set_to_none:
        assert w.grad is None and tw.grad is None
    else:
        assert w.grad.tolist() == tw.grad.tolist() == [0.0, 0.0, 0.0]
        assert w.grad is held and held.tolist() == [0.0, 0.0, 0.0]  # zeroed in place
    # a parameter without a gradient is skipped; with a zero one it is stepped
    opt.step()
    assert w.tolist() == [1.0, 1.0, 1.0]


def test_a_parameter_without_grad_is_skipped_and_gets_no_state():
    w, b = em.ones(2, requires_grad=True), em.ones(2, requires_grad=True)
    opt = em.optim.Adam([w, b], lr=0.1)
    (w * 3).sum().backward()
    opt.step()
    assert b.tolist() == [1.0, 1.0] and list(opt.state_dict()["state"]) == [0]


def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return type(e), str(e)
    return None


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=-1.0)), ("SGD", dict(momentum=-0.5)), ("SGD", dict(weight_decay=-1)),
    ("SGD", dict(nesterov=True)), ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1)),
    ("Adam", dict(lr=-0.1)), ("Adam", dict(betas=(1.0, 0.9))), ("Adam", dict(betas=(0.9, -1.0))),
    ("Adam", dict(eps=-1.0)), ("Adam", dict(weight_decay=-1.0)), ("AdamW", dict(lr=-1.0)),
    ("RMSprop", dict(alpha=-1.0)), ("RMSprop", dict(momentum=-1.0)),
    ("RMSprop", dict(eps=-1.0)), ("Adagrad", dict(lr_decay=-1.0)),
    ("Adagrad", dict(initial_accumulator_value=-1.0)), ("Adagrad", dict(eps=-1.0)),
])
def test_bad_options_raise_torchs_errors(name, kwargs):
    ours = _error(lambda: getattr(em.optim, name)([em.zeros(2, requires_grad=True)], **kwargs))
    theirs = _error(lambda: getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)],
                                                       **kwargs))
    assert theirs is not None and ours == theirs


def test_bad_parameters_raise_torchs_errors():
    cases = [
        lambda lib: lib.optim.SGD([], lr=0.1),
        lambda lib: lib.optim.SGD(lib.zeros(2, requires_grad=True), lr=0.1),
        lambda lib: lib.optim.SGD([lib.zeros(2, requires_grad=True) * 2], lr=0.1),
        lambda lib: lib.optim.SGD([1.0], lr=0.1),
        lambda lib: lib.optim.SGD([{"params": {lib.zeros(2, requires_grad=True)}}], lr=0.1),
    ]
    for case in cases:
        ours, theirs = _error(lambda: case(em)), _error(lambda: case(torch))
        assert theirs is not None
        assert ours[0] is theirs[0]
        assert ours[1] == theirs[1].replace("torch.FloatTensor", "ember.Tensor")
    w = em.zeros(2, requires_grad=True)
    opt = em.optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter "
                                         "group"):
        opt.add_param_group({"params": [w]})
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([w])
    with pytest.warns(UserWarning, match="duplicate parameters"):
        em.optim.SGD([w, w], lr=0.1)


def test_repr_and_defaults_match_torchs():
    for name in ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]:
        ours = getattr(em.optim, name)([em.zeros(2, requires_grad=True)], lr=0.5)
        theirs = getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], lr=0.5)
        assert repr(ours) == repr(theirs)
        assert ours.defaults == theirs.defaults


def test_add_param_group_later_and_closure():
    w, b = em.ones(2, requires_grad=True), em.ones(2, requires_grad=True)
    opt = em.optim.SGD([w], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0

    def closure():
        opt.zero_grad()
        loss = (w * 2 + b * 4).sum()
        loss.backward()
        return loss
    loss = opt.step(closure)
    assert loss.item() == 12.0
    assert w.tolist() == pytest.approx([0.8, 0.8]) and b.tolist() == pytest.approx([-1.0, -1.0])


# -- the step's cost -----------------------------------------------------------------

@pytest.mark.parametrize("name,opts", [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
])
def test_a_step_is_one_program_per_group_and_new_scalars_never_recompile(name, opts):
    rng = np.random.default_rng(1)
    shapes = [(16, 8), (16,), (4, 16), (4,)]
    params = [em.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
              for s in shapes]
    opt = getattr(em.optim, name)([{"params": params[:2]}, {"params": params[2:]}], **opts)
    sched = em.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=20) \
        if name != "Adagrad" else em.optim.lr_scheduler.ExponentialLR(opt, 0.9)
    for i in range(8):
        for p in params:
            p.grad = em.tensor(rng.standard_normal(p.shape).astype(np.float32))
        compiles, runs = cache.stats().compiles, run_stats["runs"]
        opt.step()
        sched.step()  # a new lr (and momentum) every step
        if i >= 2:
            assert cache.stats().compiles == compiles, f"step {i + 1} compiled"
            assert run_stats["runs"] - runs == 2, f"step {i + 1}: not one run per group"


# -- inside em.compile -----------------------------------------------------------------

@pytest.mark.parametrize("name,opts,schedule", [
    ("SGD", dict(lr=0.05, momentum=0.9), "cosine"),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), "onecycle"),
    ("Adam", dict(lr=0.01, weight_decay=0.1), "onecycle"),
    ("AdamW", dict(lr=0.01, amsgrad=True), "cosine"),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True), "onecycle"),
])
def test_a_compiled_training_step_with_a_scheduler_equals_torchs(name, opts, schedule):
    """The lr (and with OneCycleLR the momentum or beta1) changes every step; the
    compiled program reads them as inputs, so it is reused and its results are torch's."""
    data = _data("float32")
    (_, _, _), (theirs, topt, tstep) = _trainers(name, opts, "float32")
    w = em.tensor(data["w"], requires_grad=True)
    b = em.tensor(data["b"], requires_grad=True)
    opt = getattr(em.optim, name)([w, b], **opts)
    if schedule == "cosine":
        sched = em.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
        tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=5)
    else:
        sched = em.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=12)
        tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.05, total_steps=12)

    @em.compile
    def step(x, y):
        opt.zero_grad()
        loss = _loss(em, w, b, x, y)
        loss.backward()
        opt.step()
        return loss.detach()

    x, y = em.tensor(data["x"]), em.tensor(data["y"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # state made on the first call
        for i in range(10):
            step(x, y)
            sched.step()
            tstep()
            tsched.step()
            _same((w, b), theirs, "float32", f"step {i + 1}")
    assert step.hits >= 6  # the lr changed every step, the program did not


# -- schedulers -------------------------------------------------------------------------

SCHEDULERS = [
    ("StepLR", dict(step_size=4, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[3, 7, 7, 20], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=8, eta_min=0.01)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (1 + e))),
    ("LinearLR", dict(start_factor=0.25, end_factor=0.9, total_iters=6)),
    ("LinearLR", dict()),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=30)),
    ("OneCycleLR", dict(max_lr=[1.0, 0.5], total_steps=30, anneal_strategy="linear")),
    ("OneCycleLR", dict(max_lr=1.0, epochs=3, steps_per_epoch=10, three_phase=True,
                        pct_start=0.25)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=30, three_phase=True,
                        anneal_strategy="linear", cycle_momentum=False)),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULERS, ids=[f"{n}-{i}" for i, (n, _) in
                                                          enumerate(SCHEDULERS)])
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_scheduler_lr_sequences_equal_torchs(name, kwargs, opt_name):
    seqs = []
    for lib in (em, torch):
        groups = [{"params": [lib.zeros(2, requires_grad=True)]},
                  {"params": [lib.zeros(2, requires_grad=True)], "lr": 0.5}]
        opt = getattr(lib.optim, opt_name)(groups, lr=0.1, **(
            dict(momentum=0.9) if opt_name == "SGD" else {}))
        sched = getattr(lib.optim.lr_scheduler, name)(opt, **kwargs)
        seq = [sched.get_last_lr()]
        moms = []
        for _ in range(29 if name == "OneCycleLR" else 30):
            opt.step()
            sched.step()
            seq.append(sched.get_last_lr())
            moms.append([g["momentum"] if "momentum" in g else g["betas"][0]
                         for g in opt.param_groups])
        assert sched.last_epoch == len(seq) - 1
        seqs.append((seq, moms, {k: v for k, v in sched.state_dict().items()
                                 if k not in ("lr_lambdas", "_get_lr_called_within_step")}))
    (seq, moms, state), (tseq, tmoms, tstate) = seqs
    assert seq == tseq and moms == tmoms  # the same Python arithmetic: exactly equal
    assert state == tstate


def _order_warnings(lib, step, scheduler_first: bool, override: bool) -> list[str]:
    """The call-order warnings of a scheduler made after `step` ran twice."""
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        step()
        step()
        sched = lib.optim.lr_scheduler.StepLR(step.opt, 1, gamma=0.5)
        if override:
            step.opt.step = types.MethodType(type(step.opt).step, step.opt)
        if scheduler_first:
            sched.step()
        step()
        sched.step()
        step()
        sched.step()
    return [str(w.message)[:40] for w in got]


@pytest.mark.parametrize("override", [False, True])
@pytest.mark.parametrize("scheduler_first", [False, True])
def test_scheduler_made_after_a_compiled_step_warns_as_torch(scheduler_first, override):
    """A compiled step replays without running `opt.step()`'s Python; a scheduler made
    after its first calls wraps `opt.step` and must see the next step as torch's does:
    no call-order warning when the optimizer stepped first, one when it did not."""
    runs = []
    for lib in (em, torch):
        w = lib.tensor([1.0, -2.0], requires_grad=True)
        opt = lib.optim.SGD([w], lr=0.1)

        def step():
            opt.zero_grad()
            (w * w).sum().backward()
            opt.step()

        fn = em.compile(step) if lib is em else step
        fn.opt = opt
        runs.append(_order_warnings(lib, fn, scheduler_first, override) + [w.tolist()])
    assert runs[0] == runs[1]


def test_scheduler_closed_form_and_warnings_as_torchs():
    for lib in (em, torch):
        opt = lib.optim.SGD([lib.zeros(2, requires_grad=True)], lr=1.0)
        sched = lib.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
            sched.step()
        with pytest.warns(UserWarning, match="epoch parameter"):
            sched.step(7)
        assert sched.get_last_lr() == [0.25]
    with pytest.raises(ValueError, match="Expected positive integer total_steps"):
        em.optim.lr_scheduler.OneCycleLR(em.optim.SGD([em.zeros(1, requires_grad=True)]), 1.0,
                                         total_steps=0)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        em.optim.lr_scheduler.OneCycleLR(em.optim.Adagrad([em.zeros(1, requires_grad=True)]),
                                         1.0, total_steps=5)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        em.optim.lr_scheduler.StepLR(object(), 2)


def test_docstring_examples_run():
    import doctest
    import importlib

    for name in ["optimizer", "sgd", "adam", "rmsprop", "adagrad", "lr_scheduler"]:
        module = importlib.import_module(f"ember.optim.{name}")
        result = doctest.testmod(module, extraglobs={"em": em, "np": np},
                                 optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, name


@pytest.mark.parametrize("name,opts", [("Adam", dict(lr=0.01, amsgrad=True)),
                                       ("SGD", dict(lr=0.05, momentum=0.9)),
                                       ("Adagrad", dict(lr=0.1, lr_decay=0.1))])
def test_a_compiled_opt_step_equals_torchs_and_replays(name, opts):
    (ours, opt, _), (theirs, topt, tstep) = _trainers(name, opts, "float32")
    data = _data("float32")
    x, y = em.tensor(data["x"]), em.tensor(data["y"])
    opt.step = em.compile(opt.step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for i in range(6):
            opt.zero_grad()
            _loss(em, *ours, x, y).backward()
            opt.step()
            tstep()
            opt.param_groups[0]["lr"] *= 0.8  # an input of the replayed program
            topt.param_groups[0]["lr"] *= 0.8
            _same(ours, theirs, "float32", f"step {i + 1}")
    assert opt.step.hits >= 3


def _compiled_run(lib, make_opt, change, steps=3):
    """Losses and parameters of `steps` steps, `change(opt, params)`, `steps` more: the
    step compiled for ember, eager for torch."""
    w = lib.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    b = lib.tensor([0.1, -0.3], requires_grad=True)
    x = lib.tensor([[1.0, 2.0], [-1.5, 0.5], [0.25, -2.0]])
    opt = make_opt(lib, [w])

    def step():
        opt.zero_grad()
        w.grad = b.grad = None
        loss = ((x @ w + b).tanh() - 0.5).square().sum()
        loss.backward()
        opt.step()
        return loss

    fn = em.compile(step) if lib is em else step
    losses = [fn().item() for _ in range(steps)]
    change(opt, b)
    losses += [fn().item() for _ in range(steps)]
    return losses + w.detach().reshape(-1).tolist() + b.detach().tolist()


def _set(**options):
    def change(opt, b):
        for key, value in options.items():
            opt.param_groups[0][key] = value
    return change


@pytest.mark.parametrize("make_opt,change", [
    (lambda lib, p: lib.optim.SGD(p, lr=0.1), _set(weight_decay=0.5)),
    (lambda lib, p: lib.optim.SGD(p, lr=0.1, momentum=0.9), _set(nesterov=True)),
    (lambda lib, p: lib.optim.Adam(p, lr=0.05), _set(maximize=True, weight_decay=0.3)),
    (lambda lib, p: lib.optim.Adam(p, lr=0.05), _set(betas=(0.2, 0.999))),
    (lambda lib, p: lib.optim.RMSprop(p, lr=0.01), _set(weight_decay=0.2)),
    (lambda lib, p: lib.optim.Adagrad(p, lr=0.1), _set(weight_decay=0.2)),
    (lambda lib, p: lib.optim.SGD(p, lr=0.1, momentum=0.5),
     lambda opt, b: opt.add_param_group({"params": [b], "lr": 0.2})),
    (lambda lib, p: lib.optim.SGD(p, lr=0.1, momentum=0.5),
     lambda opt, b: opt.param_groups[0]["params"].append(b)),
    (lambda lib, p: lib.optim.Adam(p, lr=0.05),
     lambda opt, b: opt.param_groups.append(dict(opt.param_groups[0], params=[b], lr=0.2))),
    (lambda lib, p: lib.optim.Adam(p, lr=0.05),
     lambda opt, b: opt.param_groups[0].__setitem__("params", [b])),
    (lambda lib, p: lib.optim.SGD(p, lr=0.1),
     lambda opt, b: setattr(opt, "param_groups",
                            [dict(opt.param_groups[0], params=[b], lr=0.3)])),
], ids=["sgd-wd", "sgd-nesterov", "adam-maximize", "adam-beta1", "rmsprop-wd", "adagrad-wd",
        "add-group", "params-append", "groups-append", "params-replaced", "groups-replaced"])
def test_compiled_step_follows_changed_options_and_groups(make_opt, change):
    """A compiled step took the update's Python branches on the groups' options once (a
    weight decay of 0 leaves its term out, nesterov, maximize) and updated the groups it
    saw: changing an option or adding a group traces it again, as torch runs it anew;
    also where the groups or their parameter lists are edited directly (a list's
    `append`, a new `param_groups` list), not through `add_param_group`."""
    got, want = (_compiled_run(lib, make_opt, change) for lib in (em, torch))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_groups_edited_directly_are_checked_and_bound():
    """A dict put into `param_groups` directly is a group as `add_param_group` makes it
    (defaults filled in, PyTorch's checks), also in place of a group it replaces; a bad one
    is refused before the list changes."""
    w, b = em.tensor([1.0, 2.0], requires_grad=True), em.tensor([0.5], requires_grad=True)
    opt = em.optim.Adagrad([w], lr=0.1)
    opt.param_groups.append({"params": [b]})
    assert opt.param_groups[1]["lr"] == 0.1 and opt.state[b]["sum"].tolist() == [0.0]
    opt.param_groups[0] = dict(opt.param_groups[0], lr=0.5)
    assert opt.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.param_groups.append({"params": [w]})
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        opt.param_groups.insert(0, {"params": [1.0]})
    assert len(opt.param_groups) == 2
    (w.sum() + b.sum()).backward()
    opt.step()
    assert w.tolist() == pytest.approx([0.5, 1.5]) and b.tolist() == pytest.approx([0.4])
    for again in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        before = _STATE_EPOCH[0]
        again.param_groups[0]["params"].append(em.tensor([3.0], requires_grad=True))
        assert _STATE_EPOCH[0] > before  # a compiled step would see the new parameter


def test_a_new_learning_rate_does_not_trace_a_compiled_step_again():
    """Learning rates are runtime inputs of a compiled step: a scheduler that changes them
    every step (also from 0, a warm-up's start) never makes it trace again."""
    w = em.tensor([1.0, -2.0], requires_grad=True)
    opt = em.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01)
    sched = em.optim.lr_scheduler.LambdaLR(opt, lambda e: min(e, 5) / 5)

    @em.compile
    def step():
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()

    for _ in range(8):
        step()
        sched.step()
    assert step.stats()["traces"] == 2  # the first step, then the step with a .grad
