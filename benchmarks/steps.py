"""Training loops as people write them: one cached program per step (the registry is in
`cases`).

Each case has its own contenders (`Case.custom`), named as the standard ones so the
report compares them: `ember` (lazy), `ember compiled[numpy]` where the loop is a
compiled function, and `torch eager`. A timed call runs `STEPS` steps; times are per
step. Setting a contender up runs the loop for `PROBE_STEPS` steps first and adds a
note to the report with the programs ember compiled (and em.compile's traces) per
step, the figure these cases exist for: it must stay at 0 after the first steps.

- `decaying_scalar`: `(x * s + 1).exp().sum().item()` with a new `s` every step (a
  learning-rate schedule's shape): `s` is a runtime parameter, not a constant.
- `inplace_loop`: the NumPy-style two-layer network of PyTorch's tutorials (N=64,
  D_in=1000, H=100, D_out=10): manual backward, `w -= lr * grad` under no_grad, only
  `loss.item()` read. Every step starts from realised weights and hits the cache.
- `compiled_step`: the README's `step(lr)` under `em.compile` over a parameter it
  captures (`model.w`), with a decaying learning rate passed each call.
"""

from __future__ import annotations

import importlib
import itertools
from typing import Any

import numpy as np

from .contenders import Libraries, Runner, Unavailable

__all__ = ["DECAY_CONTENDERS", "INPLACE_CONTENDERS", "STEP_CONTENDERS"]

STEPS = 20
PROBE_STEPS = 100


def _lib(libs: Libraries, name: str) -> tuple[Any, Any]:
    """(module, array -> tensor) of contender `name` ("ember" or "torch eager")."""
    if libs.device != "cpu":
        raise Unavailable("measured on the CPU only")
    if name == "torch eager":
        if libs.torch is None:
            raise Unavailable(f"torch cannot be imported: {libs.torch_error}")
        return libs.torch, lambda a: libs.torch.from_numpy(a.copy())
    if libs.em is None:
        raise Unavailable(f"ember cannot be imported: {libs.em_error}")
    return libs.em, lambda a: libs.em.tensor(a)  # NOTE: its own memory, as torch.randn gives


def _compiles(libs: Libraries) -> int:
    s = importlib.import_module(f"{libs.em.__name__}.runtime.cache").stats()
    return s.compiles + s.disk_hits


def _note(libs: Libraries, case: str, what: str, steps: int, count: int) -> None:
    libs.notes.append(f"{case}: {what} {count} in {steps} steps ({count / steps:.3g} per step) "
                      "after the first")


# ---- decaying scalar -----------------------------------------------------------------

def decay_inputs(size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": rng.uniform(-1, 1, size).astype(np.float32)}


def _scales(start: int, n: int) -> list[float]:
    # NOTE: 0.5 + 0.5 * 0.999**i never repeats and never reaches a keyed value (1.0 at 0)
    return [0.5 + 0.5 * 0.999 ** i for i in range(start + 1, start + 1 + n)]


def np_decay(x: np.ndarray) -> list[np.ndarray]:
    return [np.array([np.exp(x * np.float32(s) + np.float32(1)).sum() for s in _scales(0, STEPS)])]


def _decay_steps(x: Any, scales: list[float]) -> list[float]:
    return [(x * s + 1).exp().sum().item() for s in scales]


def _decay_runner(name: str):
    def make(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
        lib, to = _lib(libs, name)
        x = to(inputs["x"])
        fresh = itertools.count(STEPS + 1, STEPS)
        if lib is libs.em:
            _decay_steps(x, _scales(0, 2))
            before = _compiles(libs)
            _decay_steps(x, _scales(1000, PROBE_STEPS))
            _note(libs, "decaying_scalar", "ember compiled", PROBE_STEPS, _compiles(libs) - before)
        return Runner(lambda: _decay_steps(x, _scales(next(fresh), STEPS)),
                      lambda: [np.array(_decay_steps(x, _scales(0, STEPS)), dtype=np.float32)])
    return make


DECAY_CONTENDERS = {"ember": _decay_runner("ember"), "torch eager": _decay_runner("torch eager")}


# ---- the two-layer network of PyTorch's tutorials, updated in place -------------------

TWO_LAYER_LR = 1e-6


def two_layer_inputs(size: tuple[int, int, int, int],
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    n, d_in, h, d_out = size
    return {"x": rng.standard_normal((n, d_in), dtype=np.float32),
            "y": rng.standard_normal((n, d_out), dtype=np.float32),
            "w1": rng.standard_normal((d_in, h), dtype=np.float32),
            "w2": rng.standard_normal((h, d_out), dtype=np.float32)}


def np_two_layer(x, y, w1, w2) -> list[np.ndarray]:
    w1, w2 = w1.copy(), w2.copy()
    for _ in range(STEPS):
        h = x @ w1
        h_relu = np.maximum(h, 0)
        y_pred = h_relu @ w2
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.T @ grad_y_pred
        grad_h = grad_y_pred @ w2.T
        grad_h[h < 0] = 0
        w1 -= TWO_LAYER_LR * (x.T @ grad_h)
        w2 -= TWO_LAYER_LR * grad_w2
    return [w1, w2]


def two_layer_step(lib: Any, x: Any, y: Any, w1: Any, w2: Any) -> float:
    """One step as the tutorial writes it (tensors, manual backward)."""
    h = x.mm(w1)
    h_relu = h.clamp(min=0)
    y_pred = h_relu.mm(w2)
    loss = (y_pred - y).pow(2).sum().item()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.t().mm(grad_y_pred)
    grad_h_relu = grad_y_pred.mm(w2.t())
    grad_h = grad_h_relu.clone()
    grad_h[h < 0] = 0
    grad_w1 = x.t().mm(grad_h)
    with lib.no_grad():
        w1 -= TWO_LAYER_LR * grad_w1
        w2 -= TWO_LAYER_LR * grad_w2
    return loss


def _two_layer_runner(name: str):
    def make(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
        lib, to = _lib(libs, name)
        x, y = to(inputs["x"]), to(inputs["y"])

        def steps(w1: Any, w2: Any, n: int) -> None:
            for _ in range(n):
                two_layer_step(lib, x, y, w1, w2)

        if lib is libs.em:
            w1, w2 = to(inputs["w1"]), to(inputs["w2"])
            steps(w1, w2, 2)
            before = _compiles(libs)
            steps(w1, w2, PROBE_STEPS)
            _note(libs, "inplace_loop", "ember compiled", PROBE_STEPS, _compiles(libs) - before)
        state = [to(inputs["w1"]), to(inputs["w2"])]

        def result() -> list[np.ndarray]:
            w1, w2 = to(inputs["w1"]), to(inputs["w2"])
            steps(w1, w2, STEPS)
            return [w1.numpy(), w2.numpy()]

        return Runner(lambda: steps(*state, STEPS), result)
    return make


INPLACE_CONTENDERS = {"ember": _two_layer_runner("ember"),
                      "torch eager": _two_layer_runner("torch eager")}


# ---- em.compile: the README's step over a captured parameter, lr decaying ------------

def step_inputs(size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"w": rng.uniform(-1, 1, size).astype(np.float32)}


def _lrs(start: int, n: int) -> list[float]:
    return [0.1 * 0.999 ** i for i in range(start + 1, start + 1 + n)]


def np_step(w: np.ndarray) -> list[np.ndarray]:
    w = w.copy()
    for lr in _lrs(0, STEPS):
        w -= np.float32(lr) * (2 * (w - 3))
    return [w]


class _Model:
    def __init__(self, w: Any):
        self.w = w


def _step_fn(lib: Any, model: _Model):
    def step(lr: float) -> Any:
        loss = ((model.w - 3) ** 2).sum()
        loss.backward()
        with lib.no_grad():
            model.w.sub_(lr * model.w.grad)
            model.w.grad.zero_()
        return loss.detach()
    return step


def _step_runner(name: str):
    def make(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
        lib, to = _lib(libs, "torch eager" if name == "torch eager" else "ember")
        compiled = name.startswith("ember compiled")

        def model() -> tuple[_Model, Any]:
            m = _Model(to(inputs["w"]).requires_grad_())
            fn = _step_fn(lib, m)
            if compiled:
                return m, lib.compile(fn)
            if lib is libs.em:  # NOTE: lazily, the update is realised where a user reads it
                return m, lambda lr: lib.realize(fn(lr), m.w)
            return m, fn

        def steps(fn: Any, lrs: list[float]) -> None:
            for lr in lrs:
                fn(lr)

        if compiled:
            m, fn = model()
            steps(fn, _lrs(0, 2))
            before, traces = _compiles(libs), fn.traces
            steps(fn, _lrs(10**4, PROBE_STEPS))
            _note(libs, "compiled_step", "em.compile traced", PROBE_STEPS, fn.traces - traces)
            _note(libs, "compiled_step", "ember compiled", PROBE_STEPS, _compiles(libs) - before)
        m, fn = model()
        fresh = itertools.count(STEPS + 1, STEPS)

        def result() -> list[np.ndarray]:
            m2, fn2 = model()
            steps(fn2, _lrs(0, STEPS))
            return [m2.w.detach().numpy()]

        return Runner(lambda: steps(fn, _lrs(next(fresh), STEPS)), result)
    return make


STEP_CONTENDERS = {"ember": _step_runner("ember"),
                   "ember compiled[numpy]": _step_runner("ember compiled[numpy]"),
                   "torch eager": _step_runner("torch eager")}
