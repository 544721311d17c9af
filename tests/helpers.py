"""The differential test helper: one function, run on ember, NumPy and torch.

`check(fn, *args, np_fn=...)` runs `fn(em, *ember_tensors)` and, where torch is
importable, `fn(torch, *torch_tensors)` (the same source: ember speaks PyTorch's API),
and `np_fn(*numpy_arrays)` when given. It compares every output tensor:

- with torch: dtype, shape, values; with `view=True` also strides, storage offset and
  whether the output shares its first input's memory at the same element offset;
- with NumPy: shape and values (NumPy's dtypes differ from torch's promotion on
  purpose, so its dtype is compared only with `np_dtype=True`).

Inputs are NumPy arrays (each framework gets its own copy), `Arg(array, "bfloat16")`
for dtypes NumPy lacks, or Python scalars (passed through unchanged). NumPy always sees
float16/bfloat16 data as float32, so its result is a higher-precision reference.

Tolerances are per result dtype (`TOLERANCE`): exact for integers and bools, a few ulps
of the dtype for floats. NaN equals NaN everywhere.

    >>> check(lambda M, x: x.sum(1), np.ones((2, 3), np.float32),
    ...       np_fn=lambda x: x.sum(1))
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

import ember as em

try:  # NOTE: torch is optional; every comparison with it is skipped without it.
    import torch
except ImportError:  # pragma: no cover - exercised on machines without torch
    torch = None

__all__ = [
    "TOLERANCE",
    "Arg",
    "assert_same",
    "assert_view_like",
    "check",
    "dtype_name",
    "flat_outputs",
    "fresh_cache",
    "needs_torch",
    "on_threads",
    "to_ember",
    "to_numpy",
    "to_torch",
    "torch",
]

# (rtol, atol) by result dtype name
TOLERANCE = {
    "float64": (1e-9, 1e-12),
    "float32": (2e-5, 1e-6),
    "float16": (2e-3, 1e-3),
    "bfloat16": (1.6e-2, 1e-2),
}

needs_torch = __import__("pytest").mark.skipif(torch is None, reason="torch is not installed")


@__import__("pytest").fixture(autouse=True)
def fresh_cache(tmp_path):
    """Each test of a module that imports this starts from empty program caches (the disk
    one in `tmp_path`) and the automatic back end; the options come back after it."""
    from ember.runtime import cache, options
    saved = options.cache_dir, options.tile_elems, options.backend
    options.cache_dir, options.backend = str(tmp_path), "auto"
    cache.clear()
    yield
    options.cache_dir, options.tile_elems, options.backend = saved


@dataclass(frozen=True)
class Arg:
    """An input array of a dtype NumPy lacks (bfloat16): values held as float32."""

    array: np.ndarray
    dtype: str


def on_threads(work, n: int = 4) -> list[BaseException]:
    """Run `work(i)` for i in range(n), each on a thread of its own; the errors raised."""
    import threading

    errors: list[BaseException] = []

    def run(i):
        try:
            work(i)
        except Exception as e:  # noqa: BLE001 - returned to the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def dtype_name(d) -> str:
    """'float32' for em.float32, torch.float32 and np.float32 alike."""
    if isinstance(d, em.dtype):
        return d.name
    return str(d).removeprefix("torch.") if torch is not None and isinstance(
        d, torch.dtype) else np.dtype(d).name


def to_ember(x):
    if isinstance(x, Arg):
        return em.tensor(x.array, dtype=getattr(em, x.dtype))
    if isinstance(x, np.ndarray):
        return em.tensor(x.copy())
    return x


def to_torch(x):
    if isinstance(x, Arg):
        return torch.tensor(x.array).to(getattr(torch, x.dtype))
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x.copy())
    return x


def to_numpy(x):
    """The NumPy reference's input: low-precision floats widened to float32."""
    if isinstance(x, Arg):
        return x.array.astype(np.float32)
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) if x.dtype == np.float16 else x.copy()
    return x


def flat_outputs(out) -> list:
    """A result as a flat list: tuples, lists and namedtuples are opened."""
    if isinstance(out, (tuple, list)):
        return [y for x in out for y in flat_outputs(x)]
    return [out]


def _values(x) -> np.ndarray:
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if isinstance(x, em.Tensor):
        return np.asarray(x.detach())
    return np.asarray(x)


def _tolerance(name: str, rtol, atol) -> tuple[float, float]:
    default = TOLERANCE.get(name, (0.0, 0.0))
    return (default[0] if rtol is None else rtol), (default[1] if atol is None else atol)


def assert_same(actual, expected, *, check_dtype: bool = True, rtol=None, atol=None,
                what: str = "") -> None:
    """`actual` (ember) matches `expected` (torch, NumPy or a Python value)."""
    if isinstance(actual, em.dtype):
        assert actual.name == dtype_name(expected), (what, actual, expected)
        return
    if not isinstance(actual, em.Tensor):
        if isinstance(expected, float) and math.isnan(expected):
            assert isinstance(actual, float) and math.isnan(actual), (what, actual)
        else:
            assert actual == expected, (what, actual, expected)
            if isinstance(expected, (bool, int, float)):
                assert type(actual) is type(expected), (what, type(actual), type(expected))
        return
    name = actual.dtype.name
    if check_dtype and not isinstance(expected, (np.ndarray, np.generic)):
        assert name == dtype_name(expected.dtype), (
            f"{what}: dtype {name}, expected {dtype_name(expected.dtype)}")
    exp = _values(expected)
    got = _values(actual)
    assert got.shape == exp.shape, f"{what}: shape {got.shape}, expected {exp.shape}"
    assert tuple(actual.shape) == got.shape
    rtol, atol = _tolerance(name, rtol, atol)
    if got.dtype.kind in "biu" and exp.dtype.kind in "biu":
        np.testing.assert_array_equal(got, exp, err_msg=what)
    else:
        np.testing.assert_allclose(got.astype(np.float64), exp.astype(np.float64), rtol=rtol,
                                   atol=atol, equal_nan=True, err_msg=what)


def assert_view_like(e_out, e_in, t_out, t_in, what: str = "") -> None:
    """Strides, storage offset and memory sharing of an ember view match torch's."""
    assert e_out.stride() == t_out.stride(), (what, e_out.stride(), t_out.stride())
    assert e_out.storage_offset() == t_out.storage_offset(), (
        what, e_out.storage_offset(), t_out.storage_offset())
    assert e_out.is_contiguous() == t_out.is_contiguous(), what
    t_shared = t_out.untyped_storage().data_ptr() == t_in.untyped_storage().data_ptr()
    assert (e_out._storage is e_in._storage) == t_shared, f"{what}: storage sharing differs"
    if t_shared and e_out.numel() and e_in.numel():
        item = e_out.element_size() if e_out.dtype is not em.bfloat16 else 4
        e_delta = (e_out.data_ptr() - e_in.data_ptr()) // item
        t_delta = (t_out.data_ptr() - t_in.data_ptr()) // t_out.element_size()
        assert e_delta == t_delta, (what, e_delta, t_delta)


def check(fn, *args, np_fn=None, torch_fn=None, dtype: str | None = None,
          np_dtype: bool = False, view: bool = False, rtol=None, atol=None,
          with_torch: bool = True):
    """Run `fn(M, *inputs)` on ember (and torch), `np_fn(*arrays)`, and compare.

    `dtype` states the expected result dtype without torch (checked always);
    `torch_fn` replaces `fn` on the torch side where the spelling differs.
    Returns ember's result.
    """
    e_args = [to_ember(a) for a in args]
    e_out = fn(em, *e_args)
    e_flat = flat_outputs(e_out)
    if dtype is not None:
        for e in e_flat:
            if isinstance(e, em.Tensor):
                assert e.dtype.name == dtype, (e.dtype, dtype)
    if np_fn is not None:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # All-NaN slices and the like
            n_flat = flat_outputs(np_fn(*[to_numpy(a) for a in args]))
        assert len(n_flat) == len(e_flat), (len(e_flat), len(n_flat))
        for i, (e, n) in enumerate(zip(e_flat, n_flat)):
            if isinstance(e, em.Tensor) and np_dtype:
                assert e.dtype.name == dtype_name(np.asarray(n).dtype), (e.dtype, n.dtype)
            if isinstance(e, em.Tensor):
                n = np.asarray(n)
            assert_same(e, n, rtol=rtol, atol=atol, what=f"numpy output {i}")
    if torch is not None and with_torch:
        t_args = [to_torch(a) for a in args]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's own warnings (deprecations, dof <= 0)
            t_flat = flat_outputs((torch_fn or fn)(torch, *t_args))
        assert len(t_flat) == len(e_flat), (len(e_flat), len(t_flat))
        for i, (e, t) in enumerate(zip(e_flat, t_flat)):
            if isinstance(t, torch.Size):
                t = tuple(t)
            assert_same(e, t, rtol=rtol, atol=atol, what=f"torch output {i}")
            if view and isinstance(e, em.Tensor):
                assert_view_like(e, e_args[0], t, t_args[0], what=f"view output {i}")
    return e_out
