"""The `adam_step` case: one `Adam.step()` over the parameters of a 784-256-10 MLP.

The gradients are set once; every call is one optimizer step (the step count, and with
it the bias corrections, changes every call). Contenders: ember (`em.optim.Adam`, one
fused program per parameter group), ember eager, and torch eager with
`torch.optim.Adam(foreach=True)` and with its default (a loop over the parameters on
the CPU). The ember contender measures, once set up, how many compiles and program runs
a step costs after warm-up and adds it to the run's notes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .contenders import Libraries, Runner, Unavailable, ember_to_tensor, to_numpy, torch_to_tensor

__all__ = ["CONTENDERS", "adam_bytes", "adam_inputs", "np_adam"]

NAMES = ("w1", "b1", "w2", "b2")
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8


def adam_inputs(size: tuple[int, int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    n_in, hidden, n_out = size
    shapes = {"w1": (hidden, n_in), "b1": (hidden,), "w2": (n_out, hidden), "b2": (n_out,)}
    inputs = {k: rng.standard_normal(s, dtype=np.float32) * 0.05 for k, s in shapes.items()}
    inputs.update({"g" + k: rng.standard_normal(s, dtype=np.float32) for k, s in shapes.items()})
    return inputs


def adam_bytes(size: tuple[int, int, int]) -> tuple[str, float]:
    """A step reads parameter, gradient and both moments and writes three of them."""
    n_in, hidden, n_out = size
    n = hidden * n_in + hidden + n_out * hidden + n_out
    return "bytes", 7 * 4 * n


def np_adam(*arrays: np.ndarray) -> list[np.ndarray]:
    """The parameters after Adam's first step from zero state (PyTorch's formula)."""
    params, grads = arrays[:4], arrays[4:]
    out = []
    for p, g in zip(params, grads):
        m = (1 - BETA1) * g
        v = (1 - BETA2) * g * g
        denom = np.sqrt(v) / np.sqrt(1 - BETA2) + EPS
        out.append(p - LR / (1 - BETA1) * m / denom)
    return out


def _model(make, inputs: dict[str, np.ndarray]) -> list:
    params = [make(inputs[k].copy(), True) for k in NAMES]
    for p, k in zip(params, NAMES):
        p.grad = make(inputs["g" + k].copy(), False)
    return params


def _runner(make_params, make_opt, force) -> Runner:
    params = make_params()
    opt = make_opt(params)

    def run() -> None:
        opt.step()
        force(params)

    def result() -> list[np.ndarray]:
        fresh = make_params()
        make_opt(fresh).step()
        force(fresh)
        return [to_numpy(p) for p in fresh]

    return Runner(run, result)


def _ember(eager: bool, compiled: bool = False):
    def contender(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
        em = libs.em
        if em is None:
            raise Unavailable(f"ember cannot be imported: {libs.em_error}")

        def make(array, requires_grad):
            return em.tensor(array, requires_grad=True) if requires_grad else \
                ember_to_tensor(libs, array, False)

        def make_opt(params):
            opt = em.optim.Adam(params, lr=LR, betas=(BETA1, BETA2), eps=EPS)
            if compiled:
                opt.step = em.compile(opt.step)
            return opt

        runner = _runner(lambda: _model(make, inputs), make_opt, lambda ps: libs.sync())
        if eager:
            step = runner.run

            def run_eager() -> None:
                with em.eager():
                    step()
            return Runner(run_eager, runner.result)
        if not compiled:
            _note_compiles(libs, runner)
        return runner
    return contender


def _note_compiles(libs: Libraries, runner: Runner) -> None:
    """Add to the notes how many compiles and program runs a warmed-up step costs."""
    from ..runtime import cache
    from ..runtime.execute import counts

    for _ in range(3):
        runner.run()
    compiles, runs, steps = cache.stats().compiles, counts["runs"], 5
    for _ in range(steps):
        runner.run()
    note = (f"adam_step: an ember step after warm-up costs "
            f"{(cache.stats().compiles - compiles) / steps:g} compiles and "
            f"{(counts['runs'] - runs) / steps:g} program runs (one parameter group)")
    if note not in libs.notes:
        libs.notes.append(note)


def _torch(foreach: bool | None):
    def contender(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
        torch = libs.torch
        if torch is None:
            raise Unavailable(f"torch cannot be imported: {libs.torch_error}")

        def make(array, requires_grad):
            return torch_to_tensor(libs, array, requires_grad)

        def make_opt(params):
            return torch.optim.Adam(params, lr=LR, betas=(BETA1, BETA2), eps=EPS,
                                    foreach=foreach)

        return _runner(lambda: _model(make, inputs), make_opt, lambda ps: libs.sync())
    return contender


CONTENDERS = {"ember": _ember(False), "ember eager": _ember(True),
              "ember compiled (em.compile(opt.step))": _ember(False, compiled=True),
              "torch eager (foreach)": _torch(True), "torch eager (default)": _torch(None)}
