"""The GPU run: the Triton back end's tests on a real GPU, then the GPU benchmarks.

    python -m ember.benchmarks --device cuda            # tests, then the table
    python -m ember.benchmarks --device cuda --dry-run  # what would run (no GPU needed)
    python -m ember.benchmarks.gpu --no-tests           # the benchmarks alone

On a machine with an NVIDIA GPU (torch with CUDA, triton; no network needed) it runs
the GPU test subset with the kernels compiled for the GPU (TRITON_INTERPRET=0):
tests/test_triton.py with EMBER_BACKEND=triton (CPU tensors, operands copied to the GPU
per call), tests/test_cuda_device.py on the real "cuda" device (the op registry and the
gradient table against the CPU, the device's API), both with EMBER_AUTOTUNE=0, and
tests/test_autotune.py (the autotuner, timing on the GPU). Then it times each case with
torch eager, torch.compile and ember on "cuda" tensors, in this process, and prints one
table: each case's time and its share of the device's copy bandwidth (a torch copy of
1 GiB) or matmul peak (torch.matmul in bfloat16 at 4096^3), or the time alone where
neither applies; and the host time of a cache-hit call that launches one fused kernel
(no synchronisation: what the Python side costs). It fits in about 6 minutes on one
H100/H200.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CASES", "NO_DEVICE", "main", "plan_lines", "run"]

NO_DEVICE = "no CUDA device: the GPU benchmarks need one"
EMBER_LANE = "ember (cuda tensors)"
# (test file, its environment): kernels compiled for the GPU, never interpreted; no
# autotuning while tests check values (each candidate would compile: minutes), except
# in tests/test_autotune.py, which checks the tuner itself
TESTS = (("tests/test_triton.py", {"TRITON_INTERPRET": "0", "EMBER_BACKEND": "triton",
                                   "EMBER_AUTOTUNE": "0"}),
         ("tests/test_cuda_device.py", {"TRITON_INTERPRET": "0", "EMBER_BACKEND": "auto",
                                        "EMBER_AUTOTUNE": "0"}),
         ("tests/test_autotune.py", {"TRITON_INTERPRET": "0", "EMBER_BACKEND": "triton"}))
TEST_TIMEOUT_S = 240


@dataclass
class GpuCase:
    """One benchmark: inputs (NumPy), the same function for torch and ember (`lib` is
    torch or ember), and what a call moves or computes (for its share of a limit)."""

    name: str
    inputs: Callable[[np.random.Generator], dict[str, np.ndarray]]
    fn: Callable[..., Any]
    bytes: int = 0       # bytes a call must read and write (share of copy bandwidth)
    flops: int = 0       # floating-point operations (share of the matmul peak)
    dtype: str = "float32"
    train: bool = False  # fn updates its inputs (a training step) and returns nothing


def _chain(lib, x, y):
    return ((x * y + 1.0).tanh() * 0.5 + x).exp() - y


def _softmax(lib, x):
    return x.softmax(-1)


def _layer_norm(lib, x, w, b):
    f = lib.nn.functional
    return f.layer_norm(x, (x.shape[-1],), w, b)


def _matmul_bias_gelu(lib, a, b, bias):
    return lib.nn.functional.gelu(a @ b + bias)


def _mlp_step(lib, x, onehot, w1, b1, w2, b2):
    from .loops import mlp
    mlp(lib, x, onehot, w1, b1, w2, b2)


def _one_kernel(lib, x):
    return (x * 2.0 + 1.0).exp()


def _normal(*shape):
    return lambda rng: rng.standard_normal(shape, dtype=np.float32)


def _rows(n, m):
    return GpuCase(f"softmax {n}x{m}", lambda rng: {"x": _normal(n, m)(rng)}, _softmax,
                   bytes=2 * 4 * n * m)


def _norm(n, m):
    return GpuCase(f"layer_norm {n}x{m}",
                   lambda rng: {"x": _normal(n, m)(rng), "w": _normal(m)(rng),
                                "b": _normal(m)(rng)}, _layer_norm, bytes=2 * 4 * n * m)


def _mlp_inputs(rng):
    from .loops import mlp_inputs
    return mlp_inputs((4096, 1024, 1024, 16), rng)


N_CHAIN = 64 << 20
M = 4096
CASES = [
    GpuCase("pointwise chain 64M", lambda rng: {"x": _normal(N_CHAIN)(rng),
                                                "y": _normal(N_CHAIN)(rng)},
            _chain, bytes=3 * 4 * N_CHAIN),
    _rows(4096, 4096), _rows(32768, 1024), _norm(4096, 4096), _norm(32768, 1024),
    GpuCase("matmul+bias+gelu bf16 4096^3",
            lambda rng: {"a": _normal(M, M)(rng), "b": _normal(M, M)(rng),
                         "bias": _normal(M)(rng)},
            _matmul_bias_gelu, flops=2 * M * M * M, dtype="bfloat16"),
    GpuCase("mlp training step 4096x1024x1024x16", _mlp_inputs, _mlp_step, train=True),
    GpuCase("cache-hit host overhead, one kernel", lambda rng: {"x": _normal(16)(rng)},
            _one_kernel),
]


def plan_lines() -> list[str]:
    """What a run does, one line each (`--dry-run` prints them)."""
    lines = [f"tests: {path} with " + " ".join(f"{k}={v}" for k, v in env.items())
             + f" (at most {TEST_TIMEOUT_S} s)" for path, env in TESTS]
    lines += [
             "limits: torch copy of 1 GiB (copy bandwidth), torch.matmul bf16 4096^3 (peak)"]
    for c in CASES:
        share = "copy bandwidth" if c.bytes else "matmul peak" if c.flops else "time only"
        lines.append(f"case: {c.name} ({c.dtype}; {share}): torch eager, torch.compile, "
                     f"{EMBER_LANE}")
    lines.append("host time of a cache-hit call launching one fused kernel (ember, torch "
                 "eager, torch.compile; no synchronisation)")
    return lines


# ---------------------------------------------------------------------------
# measuring


def _seconds(call: Callable[[], Any], sync: Callable[[], None], min_s: float = 0.2,
             most: int = 50) -> float:
    """The median seconds of a call (after one warm-up call), synchronised."""
    call()
    sync()
    times: list[float] = []
    while len(times) < 3 or (sum(times) < min_s and len(times) < most):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _limits(torch) -> tuple[float, float]:
    """(copy bandwidth in bytes/s, bfloat16 matmul FLOP/s) of the current device."""
    sync = torch.cuda.synchronize
    n = (1 << 30) // 4
    src = torch.ones(n, device="cuda")
    dst = torch.empty_like(src)
    copy = 2 * (1 << 30) / _seconds(partial(dst.copy_, src), sync)
    src = dst = None  # NOTE: frees the copy buffers before the matmul ones
    a = torch.randn(M, M, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(M, M, device="cuda", dtype=torch.bfloat16)
    peak = 2 * M ** 3 / _seconds(partial(torch.matmul, a, b), sync)
    a = b = None
    torch.cuda.empty_cache()
    return copy, peak


def _torch_lane(torch, case: GpuCase, arrays: dict, compiled: bool):
    dtype = getattr(torch, case.dtype)
    ts = {k: torch.from_numpy(v).to("cuda") for k, v in arrays.items()}
    if case.dtype != "float32":
        ts = {k: v.to(dtype) for k, v in ts.items()}
    if case.train:
        ts = {k: v.requires_grad_(k in ("w1", "b1", "w2", "b2")) for k, v in ts.items()}
    fn = torch.compile(case.fn) if compiled else case.fn
    return lambda: fn(torch, **ts)


def _ember_lane(em, case: GpuCase, arrays: dict):
    dtype = getattr(em, case.dtype)
    ts = {k: em.tensor(v, dtype=dtype, device="cuda") for k, v in arrays.items()}
    if case.train:
        ts = {k: v.requires_grad_(k in ("w1", "b1", "w2", "b2")) for k, v in ts.items()}

        def step():
            case.fn(em, **ts)
            em.realize(*(ts[k] for k in ("w1", "b1", "w2", "b2")))  # NOTE: the update
        return step
    return lambda: em.realize(case.fn(em, **ts))


def _host_overhead(torch, em) -> dict:
    """Host seconds of a cache-hit call that launches one fused kernel, unsynchronised
    (the kernel's own time overlaps the next call's Python), per lane."""
    x = torch.randn(1024, device="cuda")
    e = em.tensor(x.cpu().numpy(), device="cuda")
    compiled = torch.compile(lambda t: (t * 2.0 + 1.0).exp())
    lanes = {"torch eager": lambda: (x * 2.0 + 1.0).exp(),
             "torch.compile": lambda: compiled(x),
             EMBER_LANE: lambda: em.realize((e * 2.0 + 1.0).exp())}
    out = {}
    for name, call in lanes.items():
        for _ in range(20):
            call()
        torch.cuda.synchronize()
        times = []
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(200):
                call()
            times.append((time.perf_counter() - start) / 200)
            torch.cuda.synchronize()
        out[name] = statistics.median(times)
    return out


def _measure(case: GpuCase, lanes: dict[str, Callable[[], Callable]], sync) -> dict:
    out = {}
    for name, make in lanes.items():
        try:
            out[name] = _seconds(make(), sync)
        except Exception as e:  # noqa: BLE001 - a lane that fails is reported, not fatal
            out[name] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
    return out


def _cell(case: GpuCase, value, copy_bw: float, peak: float) -> str:
    if isinstance(value, str):
        return value
    if case.bytes:
        return f"{value * 1e3:9.3f} ms {case.bytes / value / copy_bw:6.1%} of copy"
    if case.flops:
        return f"{value * 1e3:9.3f} ms {case.flops / value / peak:6.1%} of peak"
    return f"{value * 1e6:9.1f} us" if value < 1e-3 else f"{value * 1e3:9.3f} ms"


def run_tests(root: Path) -> tuple[bool, str]:
    """Run the GPU test subset in a subprocess; (passed, its last line)."""
    ok, said = True, []
    for path, extra in TESTS:
        if not (root / path).exists():
            return False, f"{path} not found under {root} (an installed copy without tests/)"
        env = {**os.environ, **extra}
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p",
                                   "no:cacheprovider", str(root / path)], cwd=root, env=env,
                                  capture_output=True, text=True, timeout=TEST_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            ok = False
            said.append(f"{path}: timed out after {TEST_TIMEOUT_S} s")
            continue
        lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
        failures = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
        ok = ok and done.returncode == 0
        said.append(f"{path}: " + "\n  ".join(failures[:20] + lines[-1:]))
    return ok, "\n  ".join(said)


def run(tests: bool = True, compiled: bool = True, out=sys.stdout) -> int:
    """The GPU run (tests, then benchmarks); the process exit code."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        print(NO_DEVICE, file=sys.stderr)
        return 2
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("TRITON_INTERPRET=1 is set: unset it to run the kernels on the GPU",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    status = 0
    if tests:
        passed, line = run_tests(Path(__file__).resolve().parents[1])
        print(f"GPU tests: {'passed' if passed else 'FAILED'}\n  {line}", file=out, flush=True)
        status = 0 if passed else 1
    import ember as em
    copy_bw, peak = _limits(torch)
    print(f"device: {torch.cuda.get_device_name()}; copy {copy_bw / 1e9:.0f} GB/s, "
          f"bf16 matmul {peak / 1e12:.0f} TFLOP/s", file=out, flush=True)
    sync = torch.cuda.synchronize
    names = ["torch eager", "torch.compile", EMBER_LANE] if compiled else \
        ["torch eager", EMBER_LANE]
    rows = []
    for case in CASES:
        arrays = case.inputs(np.random.default_rng(0))
        lanes = {"torch eager": lambda c=case: _torch_lane(torch, c, arrays, False),
                 EMBER_LANE: lambda c=case: _ember_lane(em, c, arrays)}
        if compiled:
            lanes["torch.compile"] = lambda c=case: _torch_lane(torch, c, arrays, True)
        print(f"  {case.name} ...", file=sys.stderr, flush=True)
        rows.append((case, _measure(case, lanes, sync)))
        torch.cuda.empty_cache()
    width = max(len(c.name) for c in CASES)
    print(f"{'case':<{width}} | " + " | ".join(f"{n:<30}" for n in names), file=out)
    for case, result in rows:
        print(f"{case.name:<{width}} | " + " | ".join(
            f"{_cell(case, result.get(n), copy_bw, peak):<30}" for n in names), file=out)
    try:
        host = _host_overhead(torch, em)
        print("cache-hit host time, one fused kernel: " + ", ".join(
            f"{n} {v * 1e6:.1f} us" for n, v in host.items()), file=out)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        print(f"cache-hit host time: failed: {type(e).__name__}: {e}", file=out)
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ember.benchmarks.gpu",
                                description="ember's GPU tests and benchmarks")
    p.add_argument("--dry-run", action="store_true", help="list what would run and exit")
    p.add_argument("--no-tests", action="store_true", help="skip the GPU test subset")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile's lane")
    args = p.parse_args(argv)
    if args.dry_run:
        print("\n".join(plan_lines()))
        return 0
    return run(tests=not args.no_tests, compiled=not args.no_compile)


if __name__ == "__main__":
    sys.exit(main())
