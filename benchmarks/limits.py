"""The machine's limits, measured in the benchmark process before the cases run.

Every kernel's figure is reported as a share of one of these:

- host memory copy bandwidth: `np.copyto` of a float32 array four times the size of
  the last-level cache (at most 1 GiB), counting the bytes read and the bytes written,
  with one thread and with one thread per core (NumPy releases the GIL while it
  copies); the limit is the best of the two;
- best library matmul rate (float32 TFLOP/s) on the host: NumPy's and torch's
  `matmul` on square matrices, the best of them;
- on CUDA: device copy bandwidth (`Tensor.copy_` between two device tensors) and the
  best float32 `torch.matmul` rate with torch's default precision settings.

Each figure is the best of a few repeats: a limit is what the machine can do, not
what it usually does. Working sets that fit in the last-level cache can run faster
than the copy bandwidth, so their share can exceed 100%.
"""

from __future__ import annotations

import glob
import itertools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "Limits",
    "best_time",
    "copy_size",
    "host_copy_bandwidth",
    "last_level_cache_bytes",
    "measure",
]


@dataclass
class Limits:
    """What the machine can do; every rate is a best-of-repeats figure."""

    device: str
    cpu_count: int
    copy_gbs: float  # best host copy bandwidth over the thread counts tried, GB/s
    copy_gbs_by_threads: dict[int, float] = field(default_factory=dict)
    copy_bytes: int = 0  # size of each array copied (beyond the last-level cache if it can)
    llc_bytes: int | None = None  # the last-level cache: smaller working sets can beat the limit
    matmul_tflops: float | None = None  # best host float32 matmul rate
    matmul_source: str = ""
    device_copy_gbs: float | None = None  # CUDA only
    device_matmul_tflops: float | None = None  # CUDA only
    device_matmul_source: str = ""

    def bandwidth(self, on_device: bool) -> tuple[float | None, str]:
        """The copy bandwidth a contender is measured against, and its name."""
        if on_device and self.device_copy_gbs is not None:
            return self.device_copy_gbs, "device copy bandwidth"
        return self.copy_gbs, "copy bandwidth"

    def matmul(self, on_device: bool) -> tuple[float | None, str]:
        """The matmul rate a contender is measured against, and its name."""
        if on_device and self.device_matmul_tflops is not None:
            return self.device_matmul_tflops, "best device matmul"
        return self.matmul_tflops, "best matmul"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["copy_gbs_by_threads"] = {str(k): v for k, v in self.copy_gbs_by_threads.items()}
        return data


def best_time(fn: Callable[[], object], repeats: int,
              sync: Callable[[], None] | None = None) -> float:
    """The fastest of `repeats` timed calls of `fn` (after one untimed call), in seconds."""
    fn()
    if sync:
        sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        best = min(best, time.perf_counter() - start)
    return best


def host_copy_bandwidth(nbytes: int, repeats: int, threads: int) -> float:
    """GB/s (read + write) of `np.copyto` between two `nbytes` arrays on `threads` threads."""
    n = nbytes // 4
    src = np.ones(n, dtype=np.float32)  # NOTE: touched, so no page faults are timed
    dst = np.zeros(n, dtype=np.float32)
    if threads == 1:
        seconds = best_time(lambda: np.copyto(dst, src), repeats)
    else:
        bounds = np.linspace(0, n, threads + 1).astype(int)
        parts = [(dst[a:b], src[a:b]) for a, b in itertools.pairwise(bounds)]
        with ThreadPoolExecutor(threads) as pool:
            seconds = best_time(lambda: list(pool.map(lambda p: np.copyto(*p), parts)), repeats)
    return 2 * n * 4 / seconds / 1e9


def _matmul_rate(matmul: Callable[[], object], n: int, repeats: int,
                 sync: Callable[[], None] | None = None) -> float:
    return 2 * n**3 / best_time(matmul, repeats, sync) / 1e12


def host_matmul_peak(sizes: tuple[int, ...], repeats: int,
                     torch: ModuleType | None) -> tuple[float, str]:
    """Best float32 matmul TFLOP/s of NumPy (and torch when given) on the host."""
    best, source = 0.0, ""
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty((n, n), dtype=np.float32)
        rate = _matmul_rate(partial(np.matmul, a, b, out=out), n, repeats)
        if rate > best:
            best, source = rate, f"numpy matmul {n}x{n}"
        if torch is not None:
            ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
            rate = _matmul_rate(partial(torch.matmul, ta, tb, out=tout), n, repeats)
            if rate > best:
                best, source = rate, f"torch matmul {n}x{n}"
    return best, source


def _cuda_limits(limits: Limits, torch: ModuleType, quick: bool) -> None:
    sync = torch.cuda.synchronize
    nbytes = (256 if quick else 1024) << 20
    src = torch.ones(nbytes // 4, device="cuda")
    dst = torch.zeros_like(src)
    seconds = best_time(partial(dst.copy_, src), 5 if quick else 20, sync)
    limits.device_copy_gbs = 2 * nbytes / seconds / 1e9
    src = dst = None  # NOTE: frees the copy buffers before the matmul ones are allocated
    best, source = 0.0, ""
    for n in (2048, 4096) if quick else (4096, 8192):
        a = torch.randn(n, n, device="cuda")
        b = torch.randn(n, n, device="cuda")
        rate = _matmul_rate(partial(torch.matmul, a, b), n, 3 if quick else 10, sync)
        if rate > best:
            tf32 = torch.backends.cuda.matmul.allow_tf32
            best, source = rate, f"torch matmul {n}x{n} float32 (TF32 {'on' if tf32 else 'off'})"
    limits.device_matmul_tflops, limits.device_matmul_source = best, source
    torch.cuda.empty_cache()


def last_level_cache_bytes() -> int | None:
    """The largest CPU cache's size from Linux's sysfs, or None where it cannot be read."""
    sizes = []
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(index) as f:
                text = f.read().strip().upper()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        sizes.append(int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
    return max(sizes) if sizes else None


def copy_size(quick: bool) -> int:
    """Bytes per array copied: 4x the last-level cache, between 64 MiB and 1 GiB."""
    llc = last_level_cache_bytes() or (32 << 20)
    return min(max(4 * llc, 64 << 20), (256 if quick else 1024) << 20)


def measure(device: str, quick: bool, torch: ModuleType | None = None) -> Limits:
    """Measure the limits of this machine for a run on `device` ("cpu" or "cuda")."""
    cpus = os.cpu_count() or 1
    nbytes = copy_size(quick)
    repeats = 5 if quick else 15
    by_threads = {t: host_copy_bandwidth(nbytes, repeats, t) for t in sorted({1, cpus})}
    limits = Limits(device=device, cpu_count=cpus, copy_gbs=max(by_threads.values()),
                    copy_gbs_by_threads=by_threads, copy_bytes=nbytes,
                    llc_bytes=last_level_cache_bytes())
    sizes = (512,) if quick else (1024, 2048)
    limits.matmul_tflops, limits.matmul_source = host_matmul_peak(sizes, 3 if quick else 7, torch)
    if device == "cuda" and torch is not None:
        _cuda_limits(limits, torch, quick)
    return limits
