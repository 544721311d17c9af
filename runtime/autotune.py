"""Choosing a Triton kernel's blocks, warps and stages: candidates timed once, kept on disk.

codegen/triton_gen.py plans each matmul and reduction kernel with a short list of
candidate configs from shape-based heuristics (`KernelPlan.configs`: the kernel's
constexpr block sizes, `num_warps`, `num_stages`), the heuristic's best guess first.
The generated module wraps such a kernel in a `Tuned`, which the launcher
(runtime/triton_launch.py's `Launch`) calls as it calls a `@triton.jit` function:
`kernel[grid](*args)` under Triton's interpreter, `kernel.warmup(*args, grid=...)`
then the compiled kernel's `run` on a GPU. On its first launch a `Tuned` picks its
config, once:

* the choice stored for this kernel on this target: in memory, then in the disk cache
  (runtime/cache.py's `disk`, beside the programs, in the folder of this compiler's
  version), under a name hashed from the kernel's source and candidates (`Tuned.key`,
  which holds every shape: they are constants of the source), Triton's version and the
  GPU's compute capability (`triton_launch.target_tag`). A stored choice that is not
  one of the candidates, or was stored for another kernel or target, is ignored;
* else each candidate timed (`measure`) on scratch copies of the outputs, so the
  program's outputs are computed once, by the winner; a candidate that fails to
  compile (shared memory beyond the device's) is skipped. The winner is stored (in
  memory only with EMBER_CACHE=0);
* the first candidate, untimed, where timing means nothing or is off: with one
  candidate, under Triton's interpreter (unless a test plants `measure`), or with
  EMBER_AUTOTUNE=0.

A `Tuned` launches with its config's grid (the launcher's, the first candidate's, is
ignored) and passes its constexprs; nothing is looked up after the first launch.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable

from . import cache
from .config import debug, options, which_run
from .triton_launch import target_tag

__all__ = ["Tuned", "chosen", "clear", "measure"]

# NOTE: how long a candidate runs, in any unit (the smallest wins): None means the
# GPU's clock (`_gpu_time`) on a GPU and no timing under the interpreter. Tests plant
# a function here: measure(run, config) -> time, `run()` launching candidate `config`
# once on the scratch outputs.
measure: Callable[[Callable[[], None], dict], float] | None = None

# stored name -> config chosen in this process (EMBER_CACHE=0 keeps choices only here)
_CHOSEN: dict[str, dict] = {}


def chosen() -> dict[str, dict]:
    """The configs chosen in this process, by stored name (a copy)."""
    return dict(_CHOSEN)


def clear() -> None:
    """Forget the choices made in this process (the disk keeps its own)."""
    _CHOSEN.clear()


def _gpu_time(run: Callable[[], None], config: dict) -> float:
    from triton.testing import do_bench
    return do_bench(run, warmup=5, rep=20)


def _timer() -> Callable | None:
    if not options.autotune:
        return None
    if measure is not None:
        return measure
    return None if os.environ.get("TRITON_INTERPRET") == "1" else _gpu_time


class _Fixed:
    """A compiled kernel as the launcher calls it (`run(grid..., stream, function,
    metadata, ..., *args)`), launched over the chosen config's grid with its
    constexprs appended (Triton's launcher takes every argument, constexprs too)."""

    __slots__ = ("function", "packed_metadata", "run")

    def __init__(self, compiled, grid: tuple[int, int, int], constexprs: tuple):
        launch = compiled.run
        g0, g1, g2 = grid

        def run(_g0, _g1, _g2, *rest):
            launch(g0, g1, g2, *rest, *constexprs)

        self.run, self.function = run, compiled.function
        self.packed_metadata = compiled.packed_metadata


class Tuned:
    """A `@triton.jit` kernel `fn` with candidate `configs` (each the kernel's constexpr
    blocks, "num_warps" and "num_stages"), the grid of each, the positions of its output
    arguments (timed on scratch copies) and `key`, a digest of its source and configs."""

    def __init__(self, fn, configs, grids, outputs, key: str):
        self.fn = fn
        self.configs = [dict(c) for c in configs]
        self.grids = [tuple(g) + (1,) * (3 - len(g)) for g in grids]
        self.outputs = tuple(outputs)
        self.key = key
        self.config: dict | None = None  # the chosen one, after the first launch
        self.grid: tuple[int, int, int] | None = None

    # -- what the launcher calls ------------------------------------------------

    def __getitem__(self, grid):
        def launch(*args):
            if self.config is None:
                self._choose(args, {})
            self.fn[self.grid](*args, **self.config)
        return launch

    def warmup(self, *args, grid, **launch_options):
        """The chosen config's compiled kernel, for the launcher's `run` (on a GPU)."""
        if self.config is None:
            self._choose(args, launch_options)
        compiled = self.fn.warmup(*args, grid=self.grid, **self.config, **launch_options)
        blocks = tuple(v for name, v in self.config.items() if name.startswith("BLOCK_"))
        return _Fixed(compiled, self.grid, blocks)

    # -- choosing ---------------------------------------------------------------

    # NOTE: a config is the launch's keywords: constexprs by name, then Triton's
    # num_warps and num_stages options

    def stored_name(self) -> str:
        """The disk cache's name of this kernel's choice on this target."""
        return hashlib.sha256(f"autotune-{self.key}-{target_tag()}".encode()).hexdigest()

    def _choose(self, args, launch_options: dict) -> None:
        timer = _timer() if len(self.configs) > 1 else None
        index = 0
        if timer is not None:
            name = self.stored_name()
            index = self._stored(name)
            if index is None:
                index = self._timed(timer, args, launch_options)
                self._store(name, index)
            _CHOSEN[name] = self.configs[index]
        self.config, self.grid = self.configs[index], self.grids[index]

    def _stored(self, name: str) -> int | None:
        """The index of the stored choice, or None (none, or not one of this kernel's)."""
        config = _CHOSEN.get(name)
        if config is None and options.cache:
            stored = cache.disk.load(name)
            meta = stored[1] if stored is not None else {}
            if isinstance(meta, dict) and meta.get("autotune") == self.key \
                    and meta.get("target") == target_tag():
                config = meta.get("config")
        if isinstance(config, dict) and config in self.configs:
            return self.configs.index(config)
        return None

    def _store(self, name: str, index: int) -> None:
        if options.cache:
            cache.disk.store(name, "", {"autotune": self.key, "target": target_tag(),
                                        "config": self.configs[index]})

    def _timed(self, timer, args, launch_options: dict) -> int:
        """The index of the fastest candidate, each run on scratch outputs."""
        import torch
        scratch = list(args)
        for p in self.outputs:
            scratch[p] = torch.empty_like(args[p])
        times = []
        for config, grid in zip(self.configs, self.grids):
            kwargs = {**config, **launch_options}

            def run(grid=grid, kwargs=kwargs):
                self.fn[grid](*scratch, **kwargs)

            try:
                run()  # NOTE: compiled outside the timing
                times.append(timer(run, config))
            except Exception as e:  # noqa: BLE001 - a candidate this device cannot run
                if options.debug:
                    debug(f"{which_run()}: autotune: {config} skipped ({e})")
                times.append(float("inf"))
        best = min(range(len(times)), key=times.__getitem__)
        if times[best] == float("inf"):
            best = 0  # NOTE: none ran: the first one's launch raises the error
        if options.debug:
            name = getattr(self.fn, "__name__", "kernel")
            debug(f"{which_run()}: autotune {name}: {self.configs[best]} of times "
                  + ", ".join(f"{t:.4g}" for t in times))
        return best
