"""Features combined as training code combines them, against torch.

Each case runs as torch, and as ember lazy, eager and compiled (`em.compile` around
the function the case hands its wrapper): views of intermediates written in place
and then differentiated, a step over module parameters whose optimizer gets a
scheduler after the first calls, a checkpoint saved and loaded mid-training into the
objects a compiled step captured, gradient clipping through views of `.grad`, and
compiled functions called from threads some of which are under `no_grad`.
"""

from __future__ import annotations

import io
import threading
import warnings

import numpy as np
import pytest
from helpers import needs_torch, torch

import ember as em

# NOTE: a compiled function returning a tensor that requires grad, with no backward()
# inside, runs uncompiled (as designed) and says so
pytestmark = [needs_torch, pytest.mark.filterwarnings("ignore:em.compile:UserWarning")]

MODES = ("lazy", "eager", "compiled")


def _values(xs) -> list[np.ndarray]:
    return [np.asarray(x.detach().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
            for x in xs]


def _against_torch(case, mode: str) -> None:
    want = _values(case(torch, lambda f: f))
    em.set_eager(mode == "eager")
    try:
        got = _values(case(em, em.compile if mode == "compiled" else (lambda f: f)))
    finally:
        em.set_eager(False)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"value {i}")


def _model(M):
    rng = np.random.default_rng(0)
    model = M.nn.Sequential(M.nn.Linear(4, 8), M.nn.Tanh(), M.nn.Linear(8, 3))
    with M.no_grad():
        for p in model.parameters():
            p.copy_(M.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.5))
    rng = np.random.default_rng(1)
    x = M.tensor(rng.standard_normal((16, 4)).astype(np.float32))
    return model, x, M.tensor(rng.integers(0, 3, 16))


def _step(M, model, opt):
    def step(x, y):
        opt.zero_grad()
        loss = M.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def views_written_then_differentiated(M, wrap):
    x = M.tensor([[1.0, -2.0, 3.0, 0.5], [0.25, 4.0, -1.0, 2.0], [3.0, 1.0, 1.5, -0.5]],
                 requires_grad=True)
    w = M.tensor([2.0, -1.0], requires_grad=True)

    def f(x, w):
        y = x * 1.0
        v = y[1:, ::2]
        v.mul_(2.0)
        v.add_(w)
        y.T[0].sub_(y[:, 1].clone() * w.sum())
        u = y.unsqueeze(0)[:, :, 1:3]
        u.copy_(u.exp() * 0.5)
        y[0, 0] = (w * w).sum()
        return (y ** 2).sum() + y.prod()

    out = wrap(f)(x, w)
    out.backward()
    return [out, x.grad, w.grad]


def scheduler_after_first_steps(M, wrap):
    model, x, y = _model(M)
    opt = M.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1, amsgrad=True)
    step = wrap(_step(M, model, opt))
    losses, sched = [], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(6):
            losses.append(step(x, y).item())
            if i == 1:
                sched = M.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=10)
            elif sched is not None:
                sched.step()
    return [np.array(losses), *model.parameters(), np.array([opt.param_groups[0]["lr"]])]


def checkpoint_mid_training(M, wrap):
    model, x, y = _model(M)
    opt = M.optim.Adam(model.parameters(), lr=0.05)
    step = wrap(_step(M, model, opt))
    losses = [step(x, y).item() for _ in range(3)]
    buf = io.BytesIO()
    M.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    losses += [step(x, y).item() for _ in range(2)]
    buf.seek(0)
    saved = M.load(buf)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])  # new groups and state: the step traces again
    losses += [step(x, y).item() for _ in range(2)]
    opt.param_groups[0]["betas"] = (0.5, 0.9)
    losses += [step(x, y).item() for _ in range(2)]
    return [np.array(losses), *model.parameters(), opt.state[model[0].weight]["exp_avg"]]


def clipping_through_views(M, wrap):
    model, x, y = _model(M)
    opt = M.optim.SGD(model.parameters(), lr=0.5, momentum=0.5)

    def step(x, y):
        opt.zero_grad()
        loss = M.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        with M.no_grad():
            model[0].weight.grad[:, :2].mul_(0.5)
            model[0].weight.grad.T[1].zero_()
        opt.step()
        with M.no_grad():
            model[0].weight[0].clamp_(-0.2, 0.2)
            model[2].bias.data[1:] = 0.0
        return loss

    step = wrap(step)
    return [np.array([step(x, y).item() for _ in range(4)]), *model.parameters()]


def threads_some_without_grad(M, wrap):
    w = M.tensor([1.0, 2.0, -3.0], requires_grad=True)
    f = wrap(lambda x: (w * x).sum())
    results = {}

    def worker(i: int) -> None:
        x = M.tensor([0.5, 1.0, 2.0]) * (i + 1)
        for _ in range(3):
            if i % 2 == 0:
                with M.no_grad():
                    r = f(x)
            else:
                r = f(x)
        results[i] = (r.detach().clone(), float(r.requires_grad))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    f(M.tensor([1.0, 1.0, 1.0])).backward()
    return [*(results[i][0] for i in range(4)),
            np.array([results[i][1] for i in range(4)]), w.grad]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", [views_written_then_differentiated, scheduler_after_first_steps,
                                  checkpoint_mid_training, clipping_through_views,
                                  threads_some_without_grad], ids=lambda c: c.__name__)
def test_combined_features_match_torch(case, mode):
    _against_torch(case, mode)
