"""The autotuner of Triton matmuls and reductions (runtime/autotune.py), without a GPU.

Timings are planted (`autotune.measure`): each candidate runs once through Triton's
interpreter on scratch outputs and is given a made-up time. The winner must be the
one launched (the program's values equal the reference interpreter's under its
blocks and grid), stored in the disk cache beside the programs, reloaded by a fresh
module without timing, and a stored choice that is corrupt or not this kernel's is
ignored. Without planted timings the interpreter takes the heuristic's first
candidate, untimed.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import ember as em
from ember.runtime import autotune, cache, triton_launch
from ember.runtime import compiled as rc
from ember.runtime.config import options

pytest.importorskip("triton")
pytest.importorskip("torch")

rng = np.random.default_rng(7)
ROWS = rng.standard_normal((64, 48)).astype(np.float32)  # a persistent sum: 3 candidates
X = rng.standard_normal((40, 24)).astype(np.float32)     # a float32 matmul: 4 candidates
W = rng.standard_normal((24, 36)).astype(np.float32)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """The Triton back end, an empty disk cache in tmp_path, and nothing chosen or loaded
    in this process: a new process, as far as the autotuner can tell."""
    monkeypatch.setattr(options, "backend", "triton")
    monkeypatch.setattr(options, "autotune", True)  # NOTE: the GPU run turns it off
    monkeypatch.setattr(options, "cache_dir", str(tmp_path))
    monkeypatch.setattr(triton_launch, "_MODULES", {})
    autotune.clear()
    cache.clear()
    yield tmp_path
    autotune.clear()
    cache.clear()


def restart(monkeypatch) -> None:
    """Forget the programs, modules and choices held in memory (the disk keeps its own)."""
    monkeypatch.setattr(triton_launch, "_MODULES", {})
    autotune.clear()
    cache.clear()


def plant(monkeypatch, fastest: dict) -> list[dict]:
    """Time every candidate as 1.0 but the one with `fastest`'s items (0.5); each is run
    once. Returns the configs timed, in order."""
    timed = []

    def measure(run, config):
        run()
        timed.append(config)
        return 0.5 if fastest.items() <= config.items() else 1.0

    monkeypatch.setattr(autotune, "measure", measure)
    return timed


def no_timing(monkeypatch) -> None:
    def measure(run, config):
        raise AssertionError("timed a kernel whose choice is known")
    monkeypatch.setattr(autotune, "measure", measure)


def sum_rows():
    return em.tensor(ROWS).sum(1)


def matmul():
    return (em.tensor(X) @ em.tensor(W)) * 2


def reference(fn) -> np.ndarray:
    with em.eager():
        return fn().numpy()


def tuned_of(fn) -> autotune.Tuned:
    """The one tuned kernel of the program that computes fn() (the one held in memory)."""
    module = triton_launch.load_module(rc.compiled_for(fn()).source)
    (tuned,) = [v for k, v in vars(module).items() if k.startswith("_tuned_")]
    return tuned


def stored_choices(folder) -> list[dict]:
    out = []
    for path in folder.rglob("*.py"):
        meta = json.loads(path.read_text().split("\n")[1][2:])
        if "autotune" in meta:
            out.append(meta)
    return out


@pytest.mark.parametrize("fn,fastest,tol", [
    (sum_rows, {"BLOCK_M": 32, "num_warps": 4}, 1e-5),
    (matmul, {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 16}, 1e-5),
])
def test_the_fastest_candidate_is_launched_stored_and_reloaded(fresh, monkeypatch, fn,
                                                               fastest, tol):
    timed = plant(monkeypatch, fastest)
    out = fn()
    values = out.numpy()
    tuned = tuned_of(fn)
    assert len(timed) == len(tuned.configs) > 1 and timed == tuned.configs
    assert tuned.config != tuned.configs[0] and fastest.items() <= tuned.config.items()
    assert tuned.grid == tuned.grids[tuned.configs.index(tuned.config)]
    # NOTE: under the winner's blocks and grid, the values are the reference's
    np.testing.assert_allclose(values, reference(fn), rtol=tol, atol=tol)
    (meta,) = stored_choices(fresh)
    assert meta["config"] == tuned.config and meta["target"] == triton_launch.target_tag()

    # a fresh process: the choice comes from disk, nothing is timed
    restart(monkeypatch)
    no_timing(monkeypatch)
    again = fn()
    np.testing.assert_array_equal(again.numpy(), values)
    assert tuned_of(fn).config == tuned.config and tuned_of(fn) is not tuned


@pytest.mark.parametrize("damage", ["not_a_candidate", "another_kernel", "another_target",
                                    "checksum", "not_a_dict"])
def test_a_corrupt_or_foreign_stored_choice_is_ignored(fresh, monkeypatch, damage):
    plant(monkeypatch, {"BLOCK_M": 32})
    ref = sum_rows().numpy()
    (path,) = [p for p in fresh.rglob("*.py")
               if '"autotune"' in p.read_text().split("\n")[1]]
    name = path.stem
    meta = json.loads(path.read_text().split("\n")[1][2:])
    if damage == "checksum":
        path.write_text(path.read_text().replace('"BLOCK_M": 32', '"BLOCK_M": 64'))
    else:
        bad = {"not_a_candidate": {**meta, "config": {**meta["config"], "BLOCK_M": 3}},
               "another_kernel": {**meta, "autotune": "0" * 32},
               "another_target": {**meta, "target": "triton0.0-sm90"},
               "not_a_dict": {**meta, "config": [32, 64]}}[damage]
        cache.disk.store(name, "", bad)
    restart(monkeypatch)
    timed = plant(monkeypatch, {"BLOCK_M": 64, "num_warps": 8})
    out = sum_rows()
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)
    assert timed, "a stored choice that is not this kernel's was used"
    assert tuned_of(sum_rows).config["num_warps"] == 8
    (meta,) = stored_choices(fresh)
    assert meta["config"] == tuned_of(sum_rows).config  # NOTE: rewritten with the new winner


def test_autotune_off_launches_the_heuristics_first_candidate_untimed(fresh, monkeypatch):
    monkeypatch.setattr(options, "autotune", False)
    no_timing(monkeypatch)
    out = matmul()
    np.testing.assert_allclose(out.numpy(), reference(matmul), rtol=1e-5, atol=1e-5)
    tuned = tuned_of(matmul)
    assert tuned.config == tuned.configs[0] and len(tuned.configs) > 1
    assert not stored_choices(fresh) and not autotune.chosen()


def test_without_the_disk_cache_choices_are_kept_in_memory(fresh, monkeypatch):
    monkeypatch.setattr(options, "cache", False)
    plant(monkeypatch, {"BLOCK_M": 32})
    first = sum_rows()
    first.numpy()
    assert not list(fresh.rglob("*.py"))
    (config,) = autotune.chosen().values()
    assert config == tuned_of(sum_rows).config
    # a new module of the same kernel in this process: the choice is remembered
    monkeypatch.setattr(triton_launch, "_MODULES", {})
    cache.clear()
    no_timing(monkeypatch)
    again = sum_rows()
    np.testing.assert_array_equal(again.numpy(), first.numpy())
    assert tuned_of(sum_rows).config == config


INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@pytest.mark.skipif(not INTERPRETED, reason="kernels run on a GPU")
def test_the_interpreter_takes_the_first_candidate_untimed(fresh, monkeypatch):
    monkeypatch.setattr(autotune, "measure", None)
    out = sum_rows()
    np.testing.assert_allclose(out.numpy(), reference(sum_rows), rtol=1e-5, atol=1e-5)
    tuned = tuned_of(sum_rows)
    assert tuned.config == tuned.configs[0]
    assert not stored_choices(fresh) and not autotune.chosen()


def test_a_gpu_launch_times_on_scratch_outputs_and_runs_the_winner(monkeypatch, tmp_path):
    """`Launch`'s GPU path with a `Tuned` kernel, a fake JIT function and CPU tensors for
    device memory: candidates are timed on scratch outputs, the winner compiled once,
    and every launch goes to its launcher over the winner's grid with its constexprs."""
    import torch
    monkeypatch.setattr(options, "cache_dir", str(tmp_path))
    monkeypatch.setattr(triton_launch, "target_tag", lambda: "triton9.9-sm90")
    monkeypatch.setattr(triton_launch, "_to_device", lambda a: torch.from_numpy(np.array(a)))
    monkeypatch.setattr(triton_launch, "_device_empty",
                        lambda a: torch.zeros(a.shape, dtype=torch.float32))
    monkeypatch.setattr(triton_launch, "_to_host", lambda t: t.numpy())
    monkeypatch.setattr(triton_launch, "_current_stream", lambda: 7)
    autotune.clear()
    written, launched, compiled_with, real = [], [], [], []

    def launcher(g0, g1, g2, stream, function, meta, launch_meta, enter, exit_, *args):
        x, out, block = args
        launched.append(((g0, g1, g2), block))
        real.append(out.data_ptr())
        out.copy_(x * block)

    class Compiled:
        run, function, packed_metadata = staticmethod(launcher), "fn", "meta"

    class Kernel:
        __name__ = "k0"

        def warmup(self, *args, grid, **kwargs):
            compiled_with.append((grid, kwargs))
            return Compiled()

        def __getitem__(self, grid):
            def run(x, out, **kwargs):
                written.append(out)
                out.copy_(x * kwargs["BLOCK_M"])
            return run

    configs = [{"BLOCK_M": 4, "num_warps": 4, "num_stages": 1},
               {"BLOCK_M": 8, "num_warps": 8, "num_stages": 1}]
    tuned = autotune.Tuned(Kernel(), configs, [(3,), (2,)], (1,), "k" * 32)
    plant(monkeypatch, {"BLOCK_M": 8})
    launch = triton_launch.Launch(tuned, (3,), flat=[0], gpu=True)
    x = np.arange(6, dtype=np.float32)
    outs = []
    for _ in range(3):
        out = np.zeros(6, np.float32)
        launch([x], [out])
        outs.append(out)
    assert all(np.array_equal(o, x * 8) for o in outs)
    # NOTE: each candidate ran on scratch outputs (once to compile, once timed), alive
    # with the launch's own output: never that one
    assert len(written) == 4 and real[0] not in {w.data_ptr() for w in written}
    assert compiled_with == [((2, 1, 1), {**configs[1], "enable_fp_fusion": False})]
    assert launched == [((2, 1, 1), 8)] * 3
    (config,) = autotune.chosen().values()
    assert config == configs[1]


@pytest.mark.skipif(INTERPRETED, reason="times kernels on a GPU")
def test_on_a_gpu_the_first_launch_times_every_candidate(fresh, monkeypatch):
    import torch
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    clock = autotune._gpu_time
    times = []

    def measure(run, config):
        times.append(clock(run, config))
        return times[-1]

    monkeypatch.setattr(autotune, "measure", measure)
    out = matmul()
    np.testing.assert_allclose(out.numpy(), reference(matmul), rtol=1e-5, atol=1e-5)
    tuned = tuned_of(matmul)
    assert len(times) == len(tuned.configs) and all(0 < t < math.inf for t in times), times
    assert tuned.config == tuned.configs[times.index(min(times))]
    (meta,) = stored_choices(fresh)
    assert meta["config"] == tuned.config and meta["target"].endswith(
        "sm{}{}".format(*torch.cuda.get_device_capability()))
    restart(monkeypatch)
    no_timing(monkeypatch)
    np.testing.assert_array_equal(matmul().numpy(), out.numpy())
