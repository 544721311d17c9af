"""The GPU run (`python -m ember.benchmarks --device cuda`), checked without a GPU: it
says clearly that it needs one, `--dry-run` lists what it would run, and every case's
function (written once for torch and ember) agrees between the two on small inputs."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember.benchmarks import gpu
from ember.benchmarks.__main__ import main
from ember.runtime import devices

torch = pytest.importorskip("torch")


def test_without_a_gpu_the_run_says_it_needs_one(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["--device", "cuda"]) == 2
    assert gpu.NO_DEVICE in capsys.readouterr().err
    assert gpu.main(["--no-tests"]) == 2


def test_dry_run_lists_the_tests_and_every_case(capsys):
    assert main(["--device", "cuda", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "tests/test_triton.py" in text and "TRITON_INTERPRET=0" in text
    for case in gpu.CASES:
        assert case.name in text
    assert "tests/test_cuda_device.py" in text and "cache-hit call" in text


SMALL = {"_chain": {"x": (64,), "y": (64,)}, "_softmax": {"x": (4, 8)},
         "_layer_norm": {"x": (4, 8), "w": (8,), "b": (8,)},
         "_matmul_bias_gelu": {"a": (4, 8), "b": (8, 5), "bias": (5,)},
         "_one_kernel": {"x": (16,)}}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_each_case_function_agrees_between_torch_and_ember(name):
    rng = np.random.default_rng(0)
    arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in SMALL[name].items()}
    fn = getattr(gpu, name)
    want = fn(torch, **{k: torch.from_numpy(v) for k, v in arrays.items()}).numpy()
    got = fn(em, **{k: em.tensor(v) for k, v in arrays.items()}).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert name.lstrip("_") in {c.fn.__name__.lstrip("_") for c in gpu.CASES}


def test_the_ember_lane_runs_a_training_step():
    from ember.benchmarks.loops import mlp_inputs
    case = gpu.GpuCase("mlp", lambda rng: mlp_inputs((8, 6, 5, 3), rng), gpu._mlp_step,
                       train=True)
    arrays = case.inputs(np.random.default_rng(0))
    with devices.emulate():  # NOTE: "cuda" tensors in CPU memory, kernels interpreted
        step = gpu._ember_lane(em, case, arrays)
        for _ in range(2):
            step()  # a step, its updates realised
