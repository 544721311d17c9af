"""The code of the training and overhead cases (the registry is in `cases`).

Training steps update their trainable inputs in place and return nothing a caller
needs: the runner compares the parameters after a call against NumPy's. The NumPy
versions spell out the gradients by hand, as a NumPy user would.

The compile-time case has its own contenders (`COMPILE_CONTENDERS`): ember building
and realising a fresh 200-op graph every call (a cache miss: each call's op sequence
comes from a new seed), the same graph every call (a cache hit), and the same graph
built and realised in a new process (its compiled code comes from the disk cache).
"""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .contenders import Libraries, Runner, Unavailable, ember_force, ember_to_tensor, to_numpy

__all__ = ["CAPTURE_CONTENDERS", "COMPILE_CONTENDERS"]

# ---- Rosenbrock: f(x, y) = (a - x)^2 + b (y - x^2)^2, as in the examples -------------

ROSEN_A, ROSEN_B, ROSEN_LR = 1.0, 5.0, 0.01


def rosenbrock_inputs(size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": np.array(-1.5, dtype=np.float32), "y": np.array(2.0, dtype=np.float32)}


def sgd(lib: Any, params: tuple[Any, ...], lr: float) -> None:
    """One SGD update and `grad = None`, looping over the parameters as an optimizer does.

    NOTE: written as separate statements (`x.grad = None; y.grad = None`), torch 2.13's
    torch.compile kept the gradients after the graph break at backward(), so they
    accumulated and its results disagreed with everyone else's.
    """
    with lib.no_grad():
        for p in params:
            p -= lr * p.grad
    for p in params:
        p.grad = None


def rosenbrock(lib: Any, x: Any, y: Any) -> None:
    loss = (ROSEN_A - x) ** 2 + ROSEN_B * (y - x**2) ** 2
    loss.backward()
    sgd(lib, (x, y), ROSEN_LR)


def np_rosenbrock(x: np.ndarray, y: np.ndarray) -> None:
    r, q = ROSEN_A - x, y - x * x
    grad_x = -2 * r - 4 * ROSEN_B * x * q
    grad_y = 2 * ROSEN_B * q
    x -= ROSEN_LR * grad_x
    y -= ROSEN_LR * grad_y


# ---- linear regression: mean squared error, SGD --------------------------------------

LINREG_LR = 0.1


def linreg_inputs(size: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    n, d = size
    features = rng.standard_normal((n, d), dtype=np.float32)
    target = features @ rng.standard_normal(d).astype(np.float32) + 0.5
    target += 0.1 * rng.standard_normal(n).astype(np.float32)
    return {"features": features, "target": target.astype(np.float32),
            "w": np.zeros(d, dtype=np.float32), "b": np.zeros(1, dtype=np.float32)}


def linreg(lib: Any, features: Any, target: Any, w: Any, b: Any) -> None:
    loss = ((features @ w + b - target) ** 2).mean()
    loss.backward()
    sgd(lib, (w, b), LINREG_LR)


def np_linreg(features: np.ndarray, target: np.ndarray, w: np.ndarray, b: np.ndarray) -> None:
    residual = features @ w + b - target
    scale = 2.0 / len(target)
    w -= LINREG_LR * scale * (features.T @ residual)
    b -= LINREG_LR * scale * residual.sum()


# ---- MLP training step: 784-256-10, relu, cross-entropy via log_softmax, SGD ---------

MLP_LR = 0.1


def mlp_inputs(size: tuple[int, int, int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    batch, n_in, hidden, n_out = size
    onehot = np.zeros((batch, n_out), dtype=np.float32)
    onehot[np.arange(batch), rng.integers(n_out, size=batch)] = 1
    return {"x": rng.standard_normal((batch, n_in), dtype=np.float32), "onehot": onehot,
            "w1": (rng.standard_normal((n_in, hidden)) / np.sqrt(n_in)).astype(np.float32),
            "b1": np.zeros(hidden, dtype=np.float32),
            "w2": (rng.standard_normal((hidden, n_out)) / np.sqrt(hidden)).astype(np.float32),
            "b2": np.zeros(n_out, dtype=np.float32)}


def mlp(lib: Any, x: Any, onehot: Any, w1: Any, b1: Any, w2: Any, b2: Any) -> None:
    hidden = (x @ w1 + b1).relu()
    log_probs = (hidden @ w2 + b2).log_softmax(dim=1)
    loss = -(log_probs * onehot).sum(dim=1).mean()
    loss.backward()
    sgd(lib, (w1, b1, w2, b2), MLP_LR)


def np_mlp(x: np.ndarray, onehot: np.ndarray, w1: np.ndarray, b1: np.ndarray,
           w2: np.ndarray, b2: np.ndarray) -> None:
    pre = x @ w1 + b1
    hidden = np.maximum(pre, 0)
    logits = hidden @ w2 + b2
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    d_logits = (probs * onehot.sum(axis=1, keepdims=True) - onehot) / len(x)
    d_pre = (d_logits @ w2.T) * (pre > 0)
    w2 -= MLP_LR * (hidden.T @ d_logits)
    b2 -= MLP_LR * d_logits.sum(axis=0)
    w1 -= MLP_LR * (x.T @ d_pre)
    b1 -= MLP_LR * d_pre.sum(axis=0)


# ---- overhead on 1-element tensors ---------------------------------------------------

def one_element(size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": rng.uniform(-1, 1, 1).astype(np.float32)}


def two_vectors(size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": rng.uniform(-1, 1, size).astype(np.float32),
            "y": rng.uniform(-1, 1, size).astype(np.float32)}


def graph10(lib: Any, x: Any, y: Any) -> Any:
    v = (x * y + x) * 0.5 - y
    return v.abs().clamp(min=0.1) * x + y


def np_graph10(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    v = (x * y + x) * 0.5 - y
    return np.maximum(np.abs(v), 0.1) * x + y


def build(lib: Any, x: Any) -> Any:
    for _ in range(50):
        x = x * 1.0001 + 0.0001
    return x


def np_build(x: np.ndarray) -> np.ndarray:
    return build(np, x)


# ---- em.compile: a captured parameter against the same one passed as an argument ----

def scale_shift_inputs(size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": rng.uniform(-1, 1, size).astype(np.float32),
            "w": rng.uniform(-1, 1, size).astype(np.float32)}


def scale_shift(lib: Any, x: Any, w: Any) -> Any:
    return x * w + 1


def np_scale_shift(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x * w + 1


def _compiled_scale_shift(libs: Libraries, inputs: dict[str, np.ndarray],
                          captured: bool) -> Runner:
    """`x * w + 1` compiled, w passed as an argument or read from the enclosing scope."""
    if libs.em is None:
        raise Unavailable(f"ember cannot be imported: {libs.em_error}")
    x, w = (ember_to_tensor(libs, inputs[k], False) for k in ("x", "w"))
    if captured:
        f = libs.em.compile(lambda x: x * w + 1)
        call = lambda: f(x)  # noqa: E731
    else:
        g = libs.em.compile(lambda x, w: x * w + 1)
        call = lambda: g(x, w)  # noqa: E731
    call()  # the trace: every timed call is a cache hit
    return Runner(lambda: ember_force(libs, [call()]), lambda: [to_numpy(call())])


def compiled_argument(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
    return _compiled_scale_shift(libs, inputs, False)


def compiled_captured(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
    return _compiled_scale_shift(libs, inputs, True)


CAPTURE_CONTENDERS = {"ember compiled (w an argument)": compiled_argument,
                      "ember compiled (w captured)": compiled_captured}


# ---- compile time of a 200-op graph (ember only) -------------------------------------

CHAIN_OPS = 200
_NP_OPS = (lambda v: v * 0.5, lambda v: v + 0.25, lambda v: v - 0.25, np.abs, np.negative)
_TENSOR_OPS = (lambda v: v * 0.5, lambda v: v + 0.25, lambda v: v - 0.25,
               lambda v: v.abs(), lambda v: -v)


def _op_sequence(seed: int) -> list[int]:
    """The op indices of graph `seed`: each seed gives a graph of another structure."""
    rng = random.Random(seed)
    return [rng.randrange(len(_NP_OPS)) for _ in range(CHAIN_OPS)]


def np_random_chain(x: np.ndarray, seed: int = 0) -> np.ndarray:
    for i in _op_sequence(seed):
        x = _NP_OPS[i](x)
    return x


def tensor_random_chain(x: Any, seed: int = 0) -> Any:
    for i in _op_sequence(seed):
        x = _TENSOR_OPS[i](x)
    return x


# NOTE: seeds of cache-miss graphs start at a random point so that no earlier run's disk
# cache can hold them; seed 0 is the cache-hit graph and the one checked against NumPy.
_fresh_seeds = itertools.count(random.SystemRandom().randrange(1, 1 << 40))


def _ember_chain_runner(libs: Libraries, inputs: dict[str, np.ndarray],
                        run: Callable[[Any], Any]) -> Runner:
    if libs.em is None:
        raise Unavailable(f"ember cannot be imported: {libs.em_error}")
    x = ember_to_tensor(libs, inputs["x"], False)

    def result() -> list[np.ndarray]:
        out = tensor_random_chain(x, 0)
        ember_force(libs, [out])
        return [to_numpy(out)]

    return Runner(lambda: run(x), result)


def cache_miss(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
    return _ember_chain_runner(
        libs, inputs, lambda x: ember_force(libs, [tensor_random_chain(x, next(_fresh_seeds))]))


def cache_hit(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
    return _ember_chain_runner(libs, inputs, lambda x: ember_force(libs, [tensor_random_chain(x)]))


_NEW_PROCESS = """
import sys, time
import numpy as np
import ember as em
from ember.benchmarks.loops import tensor_random_chain
x = em.from_numpy(np.array([{value!r}], dtype=np.float32))
em.realize(x * 2)  # NOTE: ember's one-time set-up in a process is not part of the load
start = time.perf_counter()
em.realize(tensor_random_chain(x, 0))
print(time.perf_counter() - start)
"""


def disk_cache_new_process(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
    """Graph 0 built and realised in a fresh process: compiled code comes from the disk cache.

    The parent process realised graph 0 (the check, the cache-hit contender) with the same
    EMBER_CACHE_DIR, so the child finds it on disk. Only build + realise is timed, inside
    the child, after a realisation of another graph: not the start of Python, the imports
    or ember's first realisation.
    """
    if libs.quick:
        raise Unavailable("skipped under --quick: every sample starts a new Python process")
    if libs.device != "cpu":
        raise Unavailable("measured on the CPU only")
    code = _NEW_PROCESS.format(value=float(inputs["x"][0]))

    def run(x: Any) -> float:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                              text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the new process failed: {done.stderr.strip()[-300:]}")
        return float(done.stdout.split()[-1])

    runner = _ember_chain_runner(libs, inputs, run)
    runner.self_timed = True
    return runner


COMPILE_CONTENDERS = {"ember (cache miss)": cache_miss, "ember (cache hit)": cache_hit,
                      "ember (disk, new process)": disk_cache_new_process}
