"""The contenders: how each tool runs a case's code, forces its result, hands it back.

Standard contenders, in report order:

- ``ember``: lazy tensors; the timed call builds the graph and `em.realize`s the result
  (the path a user gets by default: compiled kernels, cached per graph structure);
- ``ember compiled[numpy]`` (CPU) / ``ember compiled[triton]`` (CUDA): the case's
  function wrapped in `em.compile(fn, backend=...)`, only once ember has `compile`;
- ``ember eager``: the same code under `with em.eager():`, every op run at once;
- ``numpy eager``: the natural hand-written NumPy code (always on the host);
- ``torch eager`` and ``torch.compile`` when torch is installed.

A `Runner` is one contender set up for one case at one size: `run()` is the timed
call (it includes forcing the result and, on CUDA, synchronising), `result()` runs
once and returns the outputs (or the trained parameters) as NumPy arrays for the
check against NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from .threads import Pool, ember_pool, openblas_pool, torch_pool

__all__ = [
    "EMBER",
    "EMBER_EAGER",
    "NUMPY",
    "TORCH",
    "TORCH_COMPILE",
    "Libraries",
    "Runner",
    "Unavailable",
    "compiled_name",
    "ember_force",
    "ember_to_tensor",
    "load_libraries",
    "make_runner",
    "plan",
    "to_numpy",
]

EMBER, EMBER_EAGER, NUMPY, TORCH, TORCH_COMPILE = (
    "ember", "ember eager", "numpy eager", "torch eager", "torch.compile")


def compiled_name(backend: str) -> str:
    return f"ember compiled[{backend}]"


class Unavailable(Exception):
    """This contender cannot run this case on this machine; the message says why."""


@dataclass
class Runner:
    run: Callable[[], object]
    result: Callable[[], list[np.ndarray]]
    self_timed: bool = False  # run() returns the seconds it measured itself; one call a sample


@dataclass
class Libraries:
    """The libraries this run found, and the device it runs on."""

    device: str
    quick: bool
    em: ModuleType | None = None
    em_error: str = ""
    torch: ModuleType | None = None
    torch_error: str = ""
    pools: list[Pool] = field(default_factory=list)  # thread pools watched for starvation
    notes: list[str] = field(default_factory=list)

    def watch_threads(self) -> list[str]:
        """Give each pool its own thread count, or one where it starves; returns new notes."""
        notes = [note for pool in self.pools if (note := pool.check())]
        self.notes += notes
        return notes

    def threads(self) -> dict[str, int]:
        """The thread count of every pool the suite knows (torch's, OpenBLAS's, ember's)."""
        counts = {pool.name: int(pool.get()) for pool in self.pools}
        if self.torch is not None:
            counts["torch"] = self.torch.get_num_threads()
        return counts

    def sync(self) -> None:
        if self.device == "cuda" and self.torch is not None:
            self.torch.cuda.synchronize()

    def versions(self) -> dict[str, str | None]:
        return {"numpy": np.__version__,
                "torch": getattr(self.torch, "__version__", None),
                "ember": getattr(self.em, "__version__", "unknown") if self.em else None}


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return text if len(text) <= 160 else text[:157] + "..."


def load_libraries(device: str, quick: bool, torch_threads: int | None = None) -> Libraries:
    """Import torch and ember if they are there; note why a library is missing.

    `torch_threads` sets torch's intra-op threads; None keeps torch's default and
    watches it (see `threads.Pool`), like NumPy's OpenBLAS.
    """
    libs = Libraries(device, quick)
    blas = openblas_pool()
    if blas is not None:
        libs.pools.append(blas.start())
    try:
        import torch

        libs.torch = torch
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        libs.torch_error = _describe(exc)
        libs.notes.append(f"torch not available ({libs.torch_error}): no torch contenders")
    else:
        _set_torch_threads(libs, torch_threads)
    libs.watch_threads()
    try:
        import ember

        libs.em = ember
    except Exception as exc:  # noqa: BLE001
        libs.em_error = _describe(exc)
        libs.notes.append(f"ember cannot be imported ({libs.em_error}): no ember contenders")
    else:
        if device == "cpu":
            # NOTE: ember's kernel threads starve as torch's and OpenBLAS's do: watched alike
            libs.pools.append(ember_pool(ember).start())
            libs.watch_threads()
    if libs.em is not None and not hasattr(libs.em, "compile"):
        libs.notes.append("ember has no compile() yet: no 'ember compiled' contenders")
    return libs


def _set_torch_threads(libs: Libraries, threads: int | None) -> None:
    torch = libs.torch
    if threads is not None:
        torch.set_num_threads(threads)
        libs.notes.append(f"torch runs with {threads} intra-op thread(s) (--torch-threads)")
    elif libs.device == "cpu":
        libs.pools.append(torch_pool(torch).start())


def plan(libs: Libraries) -> dict[str, str | None]:
    """Every standard contender in report order: None if it runs, else why it does not."""
    out: dict[str, str | None] = {}
    em_reason = None if libs.em is not None else f"ember cannot be imported: {libs.em_error}"
    if libs.device == "cuda" and libs.em is not None:
        cuda = getattr(libs.em, "cuda", None)
        if cuda is None or not cuda.is_available():
            em_reason = "ember reports no CUDA device (em.cuda.is_available() is false)"
    out[EMBER] = em_reason
    if libs.em is not None and hasattr(libs.em, "compile"):
        out[compiled_name("triton" if libs.device == "cuda" else "numpy")] = em_reason
    out[EMBER_EAGER] = em_reason
    out[NUMPY] = None
    torch_reason = None if libs.torch is not None else f"torch not installed: {libs.torch_error}"
    out[TORCH] = torch_reason
    if torch_reason:
        out[TORCH_COMPILE] = torch_reason
    elif not hasattr(libs.torch, "compile"):
        out[TORCH_COMPILE] = "this torch has no torch.compile"
    elif libs.quick:
        out[TORCH_COMPILE] = ("skipped under --quick: torch.compile spends seconds compiling "
                              "each case")
    else:
        out[TORCH_COMPILE] = None
    return out


# ---- conversions --------------------------------------------------------------------

def to_numpy(value: Any) -> np.ndarray:
    """A result of any contender as a NumPy array."""
    if isinstance(value, (np.ndarray, np.generic, float, int)):
        return np.asarray(value)
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "cpu"):
        value = value.cpu()
    return np.asarray(value.numpy())


def _flatten(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def torch_to_tensor(libs: Libraries, array: np.ndarray, requires_grad: bool) -> Any:
    tensor = libs.torch.from_numpy(array)
    if libs.device == "cuda":
        tensor = tensor.to("cuda")
    return tensor.requires_grad_() if requires_grad else tensor


def ember_to_tensor(libs: Libraries, array: np.ndarray, requires_grad: bool) -> Any:
    em = libs.em
    if libs.device == "cuda":
        return em.tensor(array, device="cuda", requires_grad=requires_grad)
    if requires_grad:
        return em.tensor(array, requires_grad=True)
    return em.from_numpy(array)


def ember_force(libs: Libraries, values: list[Any]) -> None:
    tensors = [v for v in values if not isinstance(v, (np.ndarray, np.generic))]
    if tensors:
        libs.em.realize(*tensors)
    libs.sync()


# ---- runners ------------------------------------------------------------------------

def numpy_runner(case: Any, inputs: dict[str, np.ndarray]) -> Runner:
    """NumPy eager; its `result()` is the reference every other contender is checked against."""
    if case.loop:
        trained = [i for i, name in enumerate(inputs) if name in case.trainable]

        def fresh() -> list[np.ndarray]:
            return [a.copy() for a in inputs.values()]

        def steps(state: list[np.ndarray]) -> None:
            for _ in range(case.per_call):
                case.numpy(*state)

        state = fresh()

        def result() -> list[np.ndarray]:
            other = fresh()
            steps(other)
            return [other[i] for i in trained]

        return Runner(lambda: steps(state), result)
    arrays = list(inputs.values())
    return Runner(lambda: case.numpy(*arrays),
                  lambda: [np.asarray(o) for o in _flatten(case.numpy(*arrays))])


def tensor_runner(case: Any, inputs: dict[str, np.ndarray], call: Callable[..., Any],
                  to_tensor: Callable[[np.ndarray, bool], Any],
                  force: Callable[[list[Any]], None], realize: bool = True) -> Runner:
    """A runner for tensor code `call(*tensors)`, with inputs made by `to_tensor`."""
    if case.loop:
        trained = [i for i, name in enumerate(inputs) if name in case.trainable]

        def fresh() -> list[Any]:
            return [to_tensor(a.copy(), n in case.trainable) for n, a in inputs.items()]

        def steps(state: list[Any]) -> None:
            for _ in range(case.per_call):
                call(*state)
            force([state[i] for i in trained])

        state = fresh()

        def result() -> list[np.ndarray]:
            other = fresh()
            steps(other)
            return [to_numpy(other[i]) for i in trained]

        return Runner(lambda: steps(state), result)
    tensors = [to_tensor(a, False) for a in inputs.values()]

    def run() -> None:
        out = call(*tensors)
        if realize:
            force(_flatten(out))

    def result() -> list[np.ndarray]:
        out = _flatten(call(*tensors))
        force(out)
        return [to_numpy(o) for o in out]

    return Runner(run, result)


def _torch_runner(name: str, case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
    torch = libs.torch
    fn = case.torch or case.tensor

    def call(*args: Any) -> Any:
        return fn(torch, *args)

    if name == TORCH_COMPILE:
        torch._dynamo.reset()  # NOTE: every case and size compiles afresh, within no cache limit
        call = torch.compile(call, dynamic=False)
    return tensor_runner(case, inputs, call, lambda a, rg: torch_to_tensor(libs, a, rg),
                         lambda values: libs.sync())


def _ember_runner(name: str, case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
    em = libs.em
    fn = case.ember or case.tensor

    if name == EMBER_EAGER:
        def call(*args: Any) -> Any:
            with em.eager():
                return fn(em, *args)
    else:
        def call(*args: Any) -> Any:
            return fn(em, *args)

        if name != EMBER:
            call = em.compile(call, backend=name[len("ember compiled["):-1])
    return tensor_runner(case, inputs, call, lambda a, rg: ember_to_tensor(libs, a, rg),
                         lambda values: ember_force(libs, values),
                         realize=case.realize or name != EMBER)


def make_runner(name: str, case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
    """Set contender `name` up for `case` with `inputs`; raises `Unavailable` if it cannot."""
    if name in case.custom:
        return case.custom[name](case, inputs, libs)
    if name == NUMPY:
        return numpy_runner(case, inputs)
    if (case.torch or case.tensor) is None and (case.ember or case.tensor) is None:
        raise Unavailable("the case has no tensor code")
    if name in (TORCH, TORCH_COMPILE):
        return _torch_runner(name, case, inputs, libs)
    return _ember_runner(name, case, inputs, libs)

