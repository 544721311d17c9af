"""User data to arrays: what `em.tensor(data)` and `em.from_numpy(a)` start from.

Owns the rules that turn Python scalars, nested sequences, NumPy arrays and
array-likes (anything with `__array__`, ember tensors included) into a C-contiguous
NumPy array in the storage dtype of an ember DType, following `torch.tensor`: dtype
inference, casts to an explicit dtype, and errors that say which element is wrong
and where. Imports only `ir.dtypes`; must not import the tracer's Tensor.

Where torch has no rule, or ember's differs:
- NumPy dtypes ember lacks map without loss: uint16 and uint32 become int64; uint64
  becomes int64 when every value fits (else TypeError); longdouble becomes float64;
  datetime64[unit] and timedelta64[unit] become int64 counts since the epoch in that
  unit, NaT the int64 minimum (what `a.view(np.int64)` gives). Complex raises.
- Arrays in non-native byte order are converted (torch refuses them).
- Under an explicit integer dtype, Python data (numbers, and anything inside a list)
  that does not fit raises torch's RuntimeError ("value cannot be converted to type
  uint8 without overflow"; NaN and inf too; uint8 takes -255..255, negatives wrapping,
  as in torch); a NumPy array or tensor given whole follows NumPy's cast (300 -> uint8
  is 44), as torch's does. Floats are never checked (1e300 -> float32 is inf).
- A Python int outside int64 raises OverflowError unless the result is floating or bool.
- Sequences may hold NumPy arrays, NumPy scalars, 0-d arrays and tensors; their dtypes
  join inference as in torch (`[np.float64(1), 2.0]` is float64, `[np.int32(1), 2]` int64).
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Sequence
from itertools import chain, groupby
from typing import Any

import numpy as np

from ..ir.dtypes import (
    ALL_DTYPES,
    DType,
    bfloat16,
    bool_,
    cast_scalar,
    default_float,
    float64,
    from_numpy_dtype,
    int64,
    promote_types,
    round_bf16,
    to_dtype,
)

__all__ = ["as_array", "check_fits", "check_scalar", "from_numpy_shared"]

_PY_NUMBER = {bool, int, float}
# NOTE: how `_walk` groups the innermost elements: Python numbers by whether they are
# floats, NumPy scalars of a dtype ember has by their type; other types one at a time.
# Keys are strings or classes, never np.dtype, which compares equal to "float" and int.
_RUN_KIND: dict[type, Any] = {bool: "int", int: "int", float: "float"}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_BY_NUMPY = {d.np: d for d in ALL_DTYPES if d is not bfloat16}
_RUN_KIND.update({d.type: d.type for d in _BY_NUMPY})
_NATIVE = "float64, float32, float16, int64, int32, int16, int8, uint8 and bool"


def as_array(data: Any, dtype: DType | None = None) -> tuple[np.ndarray, DType]:
    """Convert `data` to a fresh C-contiguous array and its ember dtype, as `torch.tensor` does.

    With `dtype=None` the dtype is inferred: Python data is `default_float()` if any
    element is a float, else int64 if any is an int, else bool (an empty list is
    float); NumPy data keeps its dtype (see the module docstring for the ones ember
    lacks). With a dtype, values are cast: floats truncate toward zero into integers,
    bool is `value != 0`. bfloat16 is returned as a float32 array rounded to bfloat16.
    The result never shares memory with `data`.

    >>> a, d = as_array([[1, 2], [3, 4.5]])
    >>> a.dtype, d, a.shape
    (dtype('float32'), ember.float32, (2, 2))
    """
    target = None if dtype is None else to_dtype(dtype)
    if _is_array_like(data):
        arr, inferred = _array_leaf(data, (), target)
        if isinstance(data, np.generic) and target is not None:
            check_fits(arr, target)  # NOTE: torch checks NumPy scalars as Python numbers
        return _cast(arr, target or inferred, copy=True), target or inferred
    if _is_sequence(data):
        fast = _fast_sequence(data, target)
        if fast is not None:
            arr, inferred = fast
            if target is not None:
                check_fits(arr, target)
            return _cast(arr, target or inferred, copy=False, from_python=True), target or inferred
    return _slow(data, target)


def check_fits(values: np.ndarray, target: DType, located: bool = True) -> None:
    """Raise torch's overflow error if some of `values` does not fit integer dtype `target`.

    As torch's check: floats must lie within the range (NaN and inf never do) and are
    then truncated; integers too, except that an unsigned target also takes negatives
    down to minus its maximum (they wrap: -1 is 255 in uint8). Bools always fit, and
    floating and bool targets check nothing. `located`: the error names the
    element's index in `values`.
    """
    if not target.is_integer or values.dtype == np.bool_ or values.size == 0:
        return
    info = np.iinfo(target.np)
    lo = -int(info.max) if info.min == 0 and values.dtype.kind in "iu" else int(info.min)
    with np.errstate(invalid="ignore"):
        bad = ~((values >= lo) & (values <= int(info.max)))
    if not bad.any():
        return
    where = np.unravel_index(int(np.argmax(bad)), values.shape)
    value = values[where].item()
    at = ""
    if located and values.ndim:
        at = f" (element at index {_path(tuple(int(i) for i in where))})"
    raise RuntimeError(f"value cannot be converted to type {target.name} without overflow: "
                       f"{value!r}{at}")


def from_numpy_shared(a: np.ndarray) -> tuple[np.ndarray, DType]:
    """Return `a` (as a base-class ndarray, never a copy) and its ember dtype, for `em.from_numpy`.

    Only dtypes ember holds natively can share memory; any other raises TypeError
    naming it (convert with `em.tensor(a)` instead). Negative strides and non-native
    byte order raise ValueError, as in `torch.from_numpy`.

    >>> x = np.zeros(3, dtype=np.int32)
    >>> y, d = from_numpy_shared(x)
    >>> y is x, d
    (True, ember.int32)
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"from_numpy(): expected np.ndarray (got {type(a).__name__})")
    if any(s < 0 for s in a.strides):
        raise ValueError(
            "At least one stride in the given numpy array is negative, and tensors with "
            "negative strides are not currently supported. (You can probably work around "
            "this by making a copy of your array with array.copy().)")
    if not a.dtype.isnative:
        raise ValueError(
            f"from_numpy(): the array's dtype {a.dtype.str!r} is not in the machine's byte "
            "order, so its memory cannot be shared; use em.tensor(a) to copy it, or "
            "a.astype(a.dtype.newbyteorder('='))")
    try:
        dtype = from_numpy_dtype(a.dtype)
    except TypeError:
        raise TypeError(
            f"from_numpy(): can't share memory with a NumPy array of dtype {a.dtype}; the "
            f"only supported types are {_NATIVE}. Use em.tensor(a) to copy and convert "
            "it") from None
    return np.asarray(a), dtype


def check_scalar(value: Any, target: DType) -> None:
    """torch's check of a fill value (`full`, `fill_`, linspace's bounds) against `target`.

    It must fit (see `check_fits`; for a floating target, a finite value must not
    round to inf), and a Python int must fit in int64 whatever `target` is.
    """
    if isinstance(value, (bool, np.bool_)) or target.is_bool:
        return
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise OverflowError(f"value {value} does not fit in int64")
    if target.is_integer:
        check_fits(np.array(value), target)
    elif isinstance(value, (float, np.floating)) and math.isfinite(value) and \
            not math.isfinite(cast_scalar(value, float64, target)):
        raise RuntimeError(f"value cannot be converted to type {target.name} without "
                           f"overflow: {value!r}")


# ---------------------------------------------------------------- classification


def _is_sequence(x: Any) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, (str, bytes, bytearray))


def _is_array_like(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic)) or (
        hasattr(x, "__array__") and not isinstance(x, type))


def _path(index: tuple[int, ...]) -> str:
    return "".join(f"[{i}]" for i in index)


def _where(index: tuple[int, ...]) -> str:
    """'element at index [1][0]', or 'data' for the top level."""
    return f"element at index {_path(index)}" if index else "data"


def _a(x: Any) -> str:
    """'an int', 'a str': the type's name with its article."""
    name = type(x).__name__
    return ("an " if name[0] in "aeiou" else "a ") + name


def _bad_element(x: Any, index: tuple[int, ...]) -> TypeError:
    where = _where(index)
    if x is None:
        return TypeError(f"tensor(): {where} is None; expected a number or bool")
    if isinstance(x, complex):
        return TypeError(f"tensor(): {where} is a complex number ({x!r}); complex tensors "
                         "are not supported")
    if isinstance(x, (str, bytes, bytearray)):
        return TypeError(f"tensor(): {where} is {_a(x)} ({reprlib.repr(x)}); expected a "
                         "number or bool")
    return TypeError(f"tensor(): {where} is {_a(x)} ({reprlib.repr(x)}); expected a "
                     "number, bool, nested sequence of them, or array")


# ---------------------------------------------------------------- NumPy data


def _array_leaf(x: Any, index: tuple[int, ...], target: DType | None) -> tuple[np.ndarray, DType]:
    """An array-like as an array in a dtype ember can cast from, and the DType it infers."""
    # NOTE: a tensor's value, copied from device memory where it is there (torch.tensor
    # of a cuda tensor copies it too); np.asarray would share a CPU tensor's memory
    a = x._array() if hasattr(x, "_array") else np.asarray(x)
    where, d = _where(index), a.dtype
    if not d.isnative:
        a = a.astype(d.newbyteorder("="))
        d = a.dtype
    if d in _BY_NUMPY:
        inferred = _BY_NUMPY[d]
    elif d.kind == "f":  # longdouble
        a, inferred = a.astype(np.float64), float64
    elif d in (np.uint16, np.uint32):
        a, inferred = a.astype(np.int64), int64
    elif d == np.uint64:
        top = int(a.max()) if a.size else 0
        if top <= _INT64_MAX:
            a, inferred = a.astype(np.int64), int64
        elif target is not None and not target.is_integer:
            inferred = target  # NOTE: big values go straight to a float or bool target
        else:
            raise TypeError(
                f"tensor(): {where} is a uint64 array holding {top}, which does not fit in "
                "int64 (ember has no uint64); convert it first, e.g. a.astype(np.float64)")
    elif d.kind in "Mm":
        # NOTE: counts of the dtype's unit (since the epoch for datetime64); NaT is int64 min.
        a, inferred = a.view(np.int64), int64
    elif d.kind == "c":
        raise TypeError(f"tensor(): {where} is a NumPy array of dtype {d}; complex tensors "
                        "are not supported")
    else:
        hint = " (a.astype(np.float64) converts one that holds numbers)" if d.kind == "O" else ""
        raise TypeError(f"tensor(): {where} is a NumPy array of dtype {d}; expected a numeric "
                        f"or bool dtype{hint}")
    declared = getattr(x, "dtype", None)
    return a, declared if isinstance(declared, DType) else inferred


def _cast(arr: np.ndarray, target: DType, copy: bool, from_python: bool = False) -> np.ndarray:
    if from_python and arr.dtype == np.int64 and target.is_floating_point:
        arr = arr.astype(np.float64)  # NOTE: torch reads Python ints as doubles for floats
    with np.errstate(invalid="ignore", over="ignore"):
        out = arr.astype(target.np, order="C", copy=copy)
    return round_bf16(out) if target is bfloat16 else out


# ---------------------------------------------------------------- Python data


def _fast_sequence(data: Sequence, target: DType | None) -> tuple[np.ndarray, DType] | None:
    """NumPy's own conversion, kept only when every leaf is a Python bool, int or float.

    Returns None when the slow walk must decide (other leaves, ragged data, ints
    outside int64, or ints and floats mixed under an integer target).
    """
    try:
        arr = np.array(data)
    except Exception:  # noqa: BLE001  NOTE: the slow walk meets it again and says where
        return None
    if arr.dtype not in (np.bool_, np.int64, np.float64):
        return None
    try:
        leaves: Any = data
        for _ in range(arr.ndim - 1):
            leaves = chain.from_iterable(leaves)
        types = set(map(type, leaves))
    except TypeError:
        return None
    if not types <= _PY_NUMBER:
        return None
    expected = np.float64 if float in types or not types else (
        np.int64 if int in types else np.bool_)
    if arr.dtype != expected:  # e.g. [-1, 2**63] comes back as float64
        return None
    if target is not None and target.is_integer and {int, float} <= types:
        return None  # keep ints above 2**53 exact next to floats
    if float in types or not types:
        return arr, default_float()
    return arr, int64 if int in types else bool_


class _Collected:
    """Leaves in order: runs of Python numbers and arrays, plus the dtype they infer."""

    def __init__(self) -> None:
        self.pieces: list[list | np.ndarray] = []
        self.dtype: DType | None = None
        self.big_int: tuple[int, tuple[int, ...]] | None = None

    def infer(self, d: DType) -> None:
        self.dtype = d if self.dtype is None else promote_types(self.dtype, d)

    def scalars(self, values: Sequence, index: tuple[int, ...]) -> None:
        """Python numbers at one place, all floats or all not (`index` is where they start)."""
        if any(isinstance(v, float) for v in values):
            self.infer(default_float())
        elif any(not isinstance(v, bool) for v in values):
            self.infer(int64)
            if self.big_int is None and not _INT64_MIN <= min(values) <= max(values) <= _INT64_MAX:
                i = next(i for i, v in enumerate(values) if not _INT64_MIN <= v <= _INT64_MAX)
                self.big_int = (values[i], (*index[:-1], index[-1] + i) if index else ())
        else:
            self.infer(bool_)
        run = self.pieces[-1] if self.pieces and isinstance(self.pieces[-1], list) else None
        # NOTE: runs never mix floats and ints, so ints above 2**53 stay exact in int64.
        if run is not None and isinstance(run[0], float) == isinstance(values[0], float):
            run.extend(values)
        else:
            self.pieces.append(list(values))


def _expected_shape(data: Any) -> tuple[int, ...]:
    """The shape read off the first element at each depth, as torch does."""
    shape: list[int] = []
    while True:
        if _is_array_like(data):
            return (*shape, *np.shape(data))
        if not _is_sequence(data):
            return tuple(shape)
        shape.append(len(data))
        if not data:
            return tuple(shape)
        data = data[0]


def _walk(x: Any, depth: int, index: tuple[int, ...], shape: tuple[int, ...],
          out: _Collected, target: DType | None) -> None:
    if _is_array_like(x):
        arr, d = _array_leaf(x, index, target)
        want = shape[depth:]
        if arr.shape != want:
            for dim, (w, g) in enumerate(zip(want, arr.shape, strict=False)):
                if w != g:
                    raise ValueError(f"tensor(): expected sequence of length {w} at dim "
                                     f"{depth + dim} (got {g}) in the array at index "
                                     f"{_path(index)}")
            raise ValueError(f"tensor(): {_where(index)} is an array of shape {arr.shape}, but "
                             f"the elements before it need shape {want}")
        out.infer(d)
        out.pieces.append(arr)
    elif isinstance(x, (bool, int, float)):
        if depth != len(shape):
            raise ValueError(f"tensor(): {_where(index)} is {_a(x)}, but expected a sequence "
                             f"of length {shape[depth]} at dim {depth}, like the elements "
                             "before it; nested lists must be rectangular")
        out.scalars((x,), index)
    elif _is_sequence(x):
        if depth == len(shape):
            raise ValueError(f"tensor(): {_where(index)} is {_a(x)}, but the elements before "
                             "it at that depth are numbers; nested lists must be rectangular")
        if len(x) != shape[depth]:
            raise ValueError(f"tensor(): expected sequence of length {shape[depth]} at dim "
                             f"{depth} (got {len(x)}) at index {_path(index)}; nested lists "
                             "must be rectangular")
        if depth + 1 < len(shape):
            for i, item in enumerate(x):
                _walk(item, depth + 1, (*index, i), shape, out, target)
            return
        # NOTE: the innermost level goes by runs (see _RUN_KIND), one step per run.
        x = x if isinstance(x, list) else list(x)
        start = 0
        for kind, run in groupby(_RUN_KIND.get(t) for t in map(type, x)):
            n = len(list(run))
            if kind is None:
                for i in range(start, start + n):
                    _walk(x[i], depth + 1, (*index, i), shape, out, target)
            elif kind in ("int", "float"):
                out.scalars(x[start:start + n], (*index, start))
            else:
                out.infer(_BY_NUMPY[np.dtype(kind)])
                out.pieces.append(np.array(x[start:start + n], dtype=kind))
            start += n
    else:
        raise _bad_element(x, index)


def _slow(data: Any, target: DType | None) -> tuple[np.ndarray, DType]:
    """Walk the data element by element: exact dtypes, and errors that say where."""
    shape = _expected_shape(data)
    out = _Collected()
    _walk(data, 0, (), shape, out, target)
    dtype = target or out.dtype or default_float()
    if out.big_int is not None and not (dtype.is_floating_point or dtype.is_bool):
        v, index = out.big_int
        raise OverflowError(f"tensor(): {_where(index)} is {v}, which does not fit in int64; "
                            "pass dtype=em.float64 to keep it as a float")
    parts = []
    for p in out.pieces:
        if target is not None:
            check_fits(np.asarray(p), target, located=False)
        if isinstance(p, np.ndarray):
            parts.append(_cast(p, dtype, copy=False).ravel())
        elif dtype.is_bool:
            parts.append(np.array([v != 0 for v in p], dtype=np.bool_))
        else:
            natural = np.float64 if dtype.is_floating_point or isinstance(p[0], float) else np.int64
            parts.append(_cast(np.array(p, dtype=natural), dtype, copy=False))
    # NOTE: concatenate always allocates, so no piece aliases the caller's arrays.
    flat = np.concatenate(parts) if parts else np.empty(0, dtype.np)
    return flat.reshape(shape), dtype
