"""Operations whose result depends on the values: unique, bincount, searchsorted.

Each reads its inputs' values (a realisation; under `em.compile`, a graph break, as in
torch.compile) and computes with NumPy; none has a gradient (as in PyTorch).
"""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as dt
from .elementwise import _TORCH_KERNEL_NAME, as_operand
from .tensor import Tensor, _dim, from_array

__all__ = ["unique", "bincount", "searchsorted"]


def _out(a: np.ndarray, dtype: dt.DType, like: Tensor) -> Tensor:
    # NOTE: np.array, not np.ascontiguousarray, which makes a 0-d array 1-d
    return from_array(np.array(a, dtype=dtype.np, order="C"), dtype, like._storage.device)


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False,
           return_counts: bool = False, dim: int | None = None):
    """The distinct elements of `input` (flattened), in ascending order; with `dim`, the
    distinct slices along it. NaNs are each distinct, as in PyTorch.

    With `return_inverse`, also where each element (slice) of input is in the result; with
    `return_counts`, also how often each occurs. Returns a tensor, or a tuple of them.

    >>> em.unique(em.tensor([3, 1, 3, 2]), return_counts=True)
    (tensor([1, 2, 3]), tensor([1, 1, 2]))
    """
    a = input._array()
    if dim is None:
        out, inverse, counts = np.unique(a.reshape(-1), return_inverse=True,
                                         return_counts=True, equal_nan=False)
        inverse = inverse.reshape(a.shape)
    else:
        d = _dim(dim, input.ndim)
        if a.shape[d] == 0 and a.size == 0 and a.ndim > 1:
            out, inverse, counts = a, np.zeros(0, np.int64), np.zeros(0, np.int64)
        else:
            out, inverse, counts = np.unique(a, return_inverse=True, return_counts=True,
                                             axis=d)
        inverse = inverse.reshape(-1)
    parts = [_out(out, input.dtype, input)]
    if return_inverse:
        parts.append(_out(inverse, dt.int64, input))
    if return_counts:
        parts.append(_out(counts, dt.int64, input))
    return parts[0] if len(parts) == 1 else tuple(parts)


def bincount(input: Tensor, weights: Tensor | None = None, minlength: int = 0) -> Tensor:
    """How often each value 0, 1, ..., max(input) occurs in the 1-D non-negative integer
    tensor `input` (at least `minlength` bins); with `weights`, their sums per value
    (float32 weights give float32, any others float64).

    >>> em.bincount(em.tensor([0, 2, 2, 5]))
    tensor([1, 0, 2, 0, 0, 1])
    """
    if input.dtype.is_floating_point:
        raise NotImplementedError(f'"bincount_cpu" not implemented for '
                                  f"'{_TORCH_KERNEL_NAME[input.dtype.name]}'")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    a = input._array()
    if a.ndim != 1 or (a.size and a.min() < 0):
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if weights is None:
        return _out(np.bincount(a.astype(np.int64), minlength=minlength), dt.int64, input)
    w = weights._array()
    if w.ndim != 1 or w.shape[0] != a.shape[0]:
        raise RuntimeError("weights should be 1-d and have the same length as input")
    dtype = dt.float32 if weights.dtype is dt.float32 else dt.float64
    out = np.bincount(a.astype(np.int64), weights=w.astype(np.float64), minlength=minlength)
    return _out(out, dtype, input)


def searchsorted(sorted_sequence: Tensor, input, *, out_int32: bool = False,
                 right: bool = False, side: str | None = None, sorter: Tensor | None = None
                 ) -> Tensor:
    """For each value of `input`, the index where inserting it into `sorted_sequence`
    (sorted along its last dim) keeps it sorted: before equal elements, or after them
    with `right=True` / `side="right"`. A 1-D sequence serves every value; otherwise its
    leading dims match input's. `sorter` sorts an unsorted sequence (argsort's result).

    >>> em.searchsorted(em.tensor([1.0, 3.0, 3.0, 5.0]), em.tensor([3.0, 6.0]))
    tensor([1, 4])
    """
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but "
                               f"got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites,"
                               " got side of left while right was True")
        right = side == "right"
    values = as_operand(input, "input")
    seq = sorted_sequence._array()
    v = values._array() if isinstance(values, Tensor) else np.asarray(values)
    if seq.ndim > 1 and (v.ndim != seq.ndim or v.shape[:-1] != seq.shape[:-1]):
        raise RuntimeError(
            "torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 "
            "dimensions of boundaries tensor and input value tensor must match, but we got "
            f"boundaries tensor {list(seq.shape)} and input value tensor {list(v.shape)}")
    if sorter is not None:
        seq = np.take_along_axis(seq, sorter._array().astype(np.int64), -1)
    kind = "right" if right else "left"
    if seq.ndim <= 1:
        out = np.searchsorted(seq.reshape(-1), v, side=kind)
    else:
        rows = seq.reshape(-1, seq.shape[-1])
        vals = v.reshape(rows.shape[0], -1)
        out = np.stack([np.searchsorted(r, x, side=kind) for r, x in zip(rows, vals)])
        out = out.reshape(v.shape)
    return _out(np.asarray(out), dt.int32 if out_int32 else dt.int64, sorted_sequence)


# Tensor methods: `t.unique()`, `t.bincount()`
Tensor.unique = unique
Tensor.bincount = bincount
