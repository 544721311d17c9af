"""How a tensor prints: `repr(t)` in PyTorch's layout, and the print options.

This module owns the text form of tensor values: `format_tensor` turns a NumPy array
of realised values plus a dtype (and the autograd/device facts that appear in the
suffix) into exactly the string `repr` of the same torch tensor would give, with
`torch.` spelled `ember.` where a dtype is named. It reimplements the rules of
PyTorch's `torch/_tensor_str.py` with NumPy: a single formatter per tensor chooses
integer mode (`1.`), fixed point or scientific notation from the non-zero finite
values; rows wrap at `linewidth`; tensors with more than `threshold` elements are
summarised with `...`, keeping `edgeitems` items at each end of every dimension.

The options live in one module-level object, `PRINT_OPTS`, changed only through
`set_printoptions` (or the `printoptions` context manager).

This module reads values; it never realises a tensor, and it must not import torch
(torch is optional for ember) nor anything of ember's but `ir.dtypes`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..ir.dtypes import DType, default_float, round_bf16

__all__ = [
    "PRINT_OPTS",
    "PrintOptions",
    "format_tensor",
    "get_printoptions",
    "printoptions",
    "set_printoptions",
]


@dataclasses.dataclass
class PrintOptions:
    """PyTorch's print options, with PyTorch's defaults."""

    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


PRINT_OPTS = PrintOptions()

_PROFILES = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80},
}


def set_printoptions(precision: int | None = None, threshold: float | None = None,
                     edgeitems: int | None = None, linewidth: int | None = None,
                     profile: str | None = None, sci_mode: bool | None = None) -> None:
    """Set how tensors print, as `torch.set_printoptions` does.

    `profile` ("default", "short", "full") resets the four numeric options first;
    explicit arguments then override it. As in PyTorch, `sci_mode` is always
    assigned: leaving it out returns it to automatic (None).

        >>> set_printoptions(precision=2)
        >>> get_printoptions()["precision"]
        2
        >>> set_printoptions(profile="default")
    """
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(
                f"unknown print profile {profile!r}; expected one of {sorted(_PROFILES)}")
        for name, value in _PROFILES[profile].items():
            setattr(PRINT_OPTS, name, value)
    if precision is not None:
        PRINT_OPTS.precision = precision
    if threshold is not None:
        PRINT_OPTS.threshold = threshold
    if edgeitems is not None:
        PRINT_OPTS.edgeitems = edgeitems
    if linewidth is not None:
        PRINT_OPTS.linewidth = linewidth
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions() -> dict[str, Any]:
    """The current print options, as keyword arguments for `set_printoptions`.

        >>> get_printoptions()["edgeitems"]
        3
    """
    return dataclasses.asdict(PRINT_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs: Any) -> Iterator[None]:
    """Change the print options inside a `with` block, restoring them after it.

        >>> with printoptions(precision=1):
        ...     get_printoptions()["precision"]
        1
    """
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


class _Formatter:
    """Picks one width and notation for every element of a tensor (`_Formatter`)."""

    def __init__(self, a: np.ndarray, floating: bool) -> None:
        self.floating = floating
        self.precision = PRINT_OPTS.precision
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = a.reshape(-1)
        if not floating:
            if flat.size:
                # NOTE: str() length grows with |x|, so the extremes give the widest text.
                ends = flat[[flat.argmin(), flat.argmax()]].tolist()
                self.max_width = max(1, *(len(str(v)) for v in ends))
            return
        vals = flat.astype(np.float64)
        vals = vals[np.isfinite(vals) & (vals != 0)]
        if vals.size == 0:
            return
        self.int_mode = bool(np.all(vals == np.ceil(vals)))
        mags = np.abs(vals)
        lo, hi = float(mags.min()), float(mags.max())
        if PRINT_OPTS.sci_mode is None:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
        else:
            self.sci_mode = PRINT_OPTS.sci_mode
        p = self.precision
        for v in np.unique(vals).tolist():
            if self.sci_mode:
                width = len(f"{v:.{p}e}")
            elif self.int_mode:
                width = len(f"{v:.0f}") + 1  # room for the trailing "."
            else:
                width = len(f"{v:.{p}f}")
            self.max_width = max(self.max_width, width)

    def format(self, value: float | bool) -> str:
        if self.floating:
            if self.sci_mode:
                text = f"{value:{self.max_width}.{self.precision}e}"
            elif self.int_mode:
                text = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    text += "."
            else:
                text = f"{value:.{self.precision}f}"
        else:
            text = f"{value}"
        return " " * (self.max_width - len(text)) + text


def _summarized(a: np.ndarray) -> np.ndarray:
    """The elements a summarised print shows (`get_summarized_data`)."""
    edge = PRINT_OPTS.edgeitems
    if a.ndim == 0:
        return a
    if a.ndim == 1:
        # NOTE: with edgeitems 0, PyTorch keeps a[:0] and a[-0:], i.e. everything.
        return np.concatenate((a[:edge], a[-edge:])) if a.shape[0] > 2 * edge else a
    if not edge:
        return np.empty((0,) * a.ndim, a.dtype)
    for axis, n in enumerate(a.shape):
        if n > 2 * edge:
            a = np.take(a, list(range(edge)) + list(range(n - edge, n)), axis=axis)
    return a


def _vector_str(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    edge = PRINT_OPTS.edgeitems
    per_line = max(1, math.floor((PRINT_OPTS.linewidth - indent) / (fmt.max_width + 2)))
    if summarize and not edge:
        data = ["..."]
    elif summarize and a.shape[0] > 2 * edge:
        data = ([fmt.format(v) for v in a[:edge].tolist()] + [" ..."]
                + [fmt.format(v) for v in a[-edge:].tolist()])
    else:
        data = [fmt.format(v) for v in a.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested_str(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        return _vector_str(a, indent, summarize, fmt)
    edge, n = PRINT_OPTS.edgeitems, a.shape[0]
    if summarize and n > 2 * edge:
        slices = ([_nested_str(a[i], indent + 1, summarize, fmt) for i in range(edge)]
                  + ["..."]
                  + [_nested_str(a[i], indent + 1, summarize, fmt) for i in range(n - edge, n)])
    else:
        slices = [_nested_str(a[i], indent + 1, summarize, fmt) for i in range(n)]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _add_suffixes(text: str, suffixes: list[str], indent: int) -> str:
    parts = [text]
    # NOTE: PyTorch's own count: two more than the characters after the last newline.
    last_line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > PRINT_OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_len += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


def format_tensor(values: np.ndarray, dtype: DType, *, requires_grad: bool = False,
                  grad_fn_name: str | None = None, device: str = "cpu") -> str:
    """What `repr` of a torch tensor with these values prints, with `ember.` dtypes.

    `values` holds the realised elements (in any dtype that casts to `dtype.np`;
    bfloat16 values are rounded to bfloat16). Suffixes follow PyTorch's order:
    device (when not the CPU), size (empty tensors), dtype (unless float32, int64 or
    bool), then `grad_fn=<...>` or, for a leaf, `requires_grad=True`.

        >>> from ember.ir.dtypes import float32, int32
        >>> format_tensor(np.array([1.0, 2.5]), float32, requires_grad=True)
        'tensor([1.0000, 2.5000], requires_grad=True)'
        >>> format_tensor(np.array([1, 2]), int32)
        'tensor([1, 2], dtype=ember.int32)'
    """
    with np.errstate(all="ignore"):
        a = np.asarray(values).astype(dtype.np, copy=False)
        if dtype.name == "bfloat16":
            a = round_bf16(a).reshape(a.shape)
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    device = str(device)
    if device.split(":")[0] != "cpu":
        suffixes.append(f"device='{'cuda:0' if device == 'cuda' else device}'")
    dtype_suffix = f"dtype=ember.{dtype.name}"
    if a.size == 0:
        # An empty tensor shows any shape but (0,), and any dtype but the default float.
        if a.ndim != 1:
            suffixes.append(f"size={tuple(a.shape)}")
        if dtype.name != default_float().name:
            suffixes.append(dtype_suffix)
        body = "[]"
    else:
        if not PRINT_OPTS.edgeitems:
            suffixes.append(f"size={tuple(a.shape)}")
        if dtype.name not in (default_float().name, "int64", "bool"):
            suffixes.append(dtype_suffix)
        summarize = a.size > PRINT_OPTS.threshold
        fmt = _Formatter(_summarized(a) if summarize else a, dtype.category == 2)
        body = _nested_str(a, indent, summarize, fmt)
    if grad_fn_name is not None:
        suffixes.append(f"grad_fn=<{grad_fn_name}>")
    elif requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + body, suffixes, indent)
