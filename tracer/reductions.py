"""Reductions, scans, sorting and the composites built on them.

The primitives are keepdim reductions (sum, prod, max, min over axes); `keepdim=False`
is a reshape afterwards. mean, var, std, norm, logsumexp, softmax, log_softmax,
argmax, quantile and friends are composed here from primitives.
"""

from __future__ import annotations

import builtins
import math
import warnings
from collections import namedtuple

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, node
from ..ir.ops import Op
from .tensor import Tensor, _dim, result, wrap_node

__all__ = ["take_along_dim", "sum", "mean", "prod", "max", "min", "amax", "amin", "argmax",
           "argmin", "var",
           "std", "norm", "logsumexp", "all", "any", "nansum", "nanmean", "cumsum", "sort",
           "argsort", "softmax", "log_softmax", "quantile", "nanquantile", "median",
           "count_nonzero", "var_mean", "std_mean"]

values_indices = namedtuple("values_indices", ["values", "indices"])


def _dims(dim, ndim: int) -> tuple[int, ...]:
    """Normalise `dim` (None, an int or a sequence) to sorted, unique axes."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (list, tuple)):
        if len(dim) == 0:
            return tuple(range(ndim))
        axes = [_dim(d, ndim) for d in dim]
        if len(set(axes)) != len(axes):
            raise RuntimeError(f"dim {axes} appears multiple times in the list of dims")
        return tuple(sorted(axes))
    axis = _dim(dim, ndim)  # a 0-d tensor takes dim 0 or -1
    return (axis,) if ndim else ()


def _finish(n: Node, axes, keepdim: bool, in_shape) -> Node:
    if keepdim:
        return b.reshape(n, tuple(1 if i in axes else s for i, s in enumerate(in_shape)))
    return b.reshape(n, tuple(s for i, s in enumerate(in_shape) if i not in axes))


def _reduce_node(op: Op, x: Node, axes, keepdim: bool) -> Node:
    return _finish(b.reduce(op, x, axes), axes, keepdim, x.shape)


def _sum_dtype(x: Tensor, dtype) -> dt.DType:
    if dtype is not None:
        return dt.to_dtype(dtype)
    return x.dtype if x.dtype.is_floating_point else dt.int64


def sum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Sum over `dim` (all dims by default); integers and bools sum as int64."""
    axes = _dims(dim, input.ndim)
    out = _sum_dtype(input, dtype)
    x = input.node
    n = _reduce_node(Op.REDUCE_SUM, b.cast(x, out), axes, keepdim)
    return result(n, (input,), "SumBackward0" if dim is None else "SumBackward1", (x,))


def nansum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    axes = _dims(dim, input.ndim)
    x = input.node
    clean = b.where(node(Op.NE, (x, x)), b.like(x, 0), x) if x.dtype.is_floating_point else x
    n = _reduce_node(Op.REDUCE_SUM, b.cast(clean, _sum_dtype(input, dtype)), axes, keepdim)
    return result(n, (input,), "NansumBackward0", (x,))


def _mean_node(x: Node, axes, keepdim: bool) -> Node:
    count = 1
    for a in axes:
        count *= x.shape[a]
    s = _reduce_node(Op.REDUCE_SUM, x, axes, keepdim)
    return node(Op.DIV, (s, b.like(s, count)))


def _widened(x: Node) -> Node:
    """x in float32 when it is float16 or bfloat16, else x itself.

    NOTE: as torch, composite reductions of half types (mean, var, std, norm) compute
    in float32 and round once at the end: float16 partial results (a sum, a square)
    overflow to inf where the result is finite.
    """
    return b.cast(x, dt.float32) if x.dtype in (dt.float16, dt.bfloat16) else x


def _need_float(x: Tensor, what: str, dtype=None) -> dt.DType:
    d = dt.to_dtype(dtype) if dtype is not None else x.dtype
    if not d.is_floating_point:
        raise RuntimeError(f"{what}(): could not infer output dtype. Input dtype must be either "
                           f"a floating point or complex dtype. Got: {x.dtype}")
    return d


def mean(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Arithmetic mean over `dim` (floating-point inputs only, as in PyTorch)."""
    d = _need_float(input, "mean", dtype)
    axes = _dims(dim, input.ndim)
    x = input.node
    n = b.cast(_mean_node(_widened(b.cast(x, d)), axes, keepdim), d)
    return result(n, (input,), "MeanBackward0" if dim is None else "MeanBackward1", (x,))


def nanmean(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """The mean of the non-NaN elements: PyTorch's `nansum(x) / (~x.isnan()).sum()`, so
    its record is that division's (DivBackward0 over NansumBackward0)."""
    from .elementwise import div, isnan, logical_not
    _need_float(input, "nanmean")
    count = sum(logical_not(isnan(input)), dim, keepdim)
    return div(nansum(input, dim, keepdim), count)


def prod(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    if isinstance(dim, (list, tuple)):
        raise TypeError("prod(): argument 'dim' must be int, not a sequence")
    axes = _dims(dim, input.ndim)
    x = input.node
    n = _reduce_node(Op.REDUCE_PROD, b.cast(x, _sum_dtype(input, dtype)), axes, keepdim)
    return result(n, (input,), "ProdBackward0" if dim is None else "ProdBackward1", (x,))


def _all_dims(dim) -> bool:
    return dim is None or (isinstance(dim, (list, tuple)) and not dim)


def _nonempty(input: Tensor, axes, what: str, all_dims: bool) -> None:
    """PyTorch's errors for max-like reductions (no identity) over empty dims."""
    if all_dims and input.numel() == 0:
        raise RuntimeError(f"{what}(): Expected reduction dim to be specified for "
                           "input.numel() == 0. Specify the reduction dim with the 'dim' "
                           "argument.")
    for a in axes:
        if input.shape[a] == 0:
            raise IndexError(f"{what}(): Expected reduction dim {a} to have non-zero size.")


def _extreme(op: Op, name: str):
    def amax_fn(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
        axes = _dims(dim, input.ndim)
        _nonempty(input, axes, name, _all_dims(dim))
        x = input.node
        if input.numel() == 0:  # NOTE: nothing to reduce: the result is empty too
            n = _finish(b.zeros(x.dtype, x.shape), axes, keepdim, x.shape)
        else:
            n = _reduce_node(op, x, axes, keepdim)
        return result(n, (input,), name.capitalize() + "Backward0", (x,))
    amax_fn.__name__ = name
    return amax_fn


amax = _extreme(Op.REDUCE_MAX, "amax")
amin = _extreme(Op.REDUCE_MIN, "amin")


def _arg_extreme(input: Tensor, dim, keepdim: bool, largest: bool, what: str) -> Tensor:
    x = input
    if dim is None:
        x = input.reshape(-1)
        axis = 0
    else:
        axis = _dim(dim, input.ndim)
    if x.ndim == 0:
        return wrap_node(b.zeros(dt.int64, ()))
    _nonempty(x, (axis,), what, dim is None)
    xn = x.node
    if input.numel() == 0:  # an empty result: no reduction to build
        return wrap_node(_finish(b.zeros(dt.int64, xn.shape), (axis,), keepdim, xn.shape))
    op = Op.REDUCE_MAX if largest else Op.REDUCE_MIN
    m = b.expand_to(b.reduce(op, xn, (axis,)), xn.shape)
    size = xn.shape[axis]
    hit = node(Op.EQ, (xn, m))
    if xn.dtype.is_floating_point:  # NaN counts as the extreme, as in PyTorch
        hit = node(Op.OR, (hit, node(Op.NE, (xn, xn))))
    shape = tuple(size if i == axis else 1 for i in range(xn.ndim))
    iota = b.expand_to(b.reshape(node(Op.ARANGE, (), (0, 1), dt.int64, (size,)), shape),
                       xn.shape)
    idx = b.reduce(Op.REDUCE_MIN, b.where(hit, iota, b.full(size, dt.int64, xn.shape)),
                   (axis,))
    if dim is None:
        return wrap_node(b.reshape(idx, (1,) * input.ndim if keepdim else ()))
    return wrap_node(_finish(idx, (axis,), keepdim, xn.shape))


def argmax(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the first maximum (NaN counts as the maximum)."""
    return _arg_extreme(input, dim, keepdim, True, "argmax")


def argmin(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return _arg_extreme(input, dim, keepdim, False, "argmin")


def _max_min(largest: bool):
    name = "max" if largest else "min"
    full = amax if largest else amin

    def fn(input: Tensor, dim=None, keepdim: bool = False):
        if isinstance(dim, Tensor):
            from .elementwise import maximum, minimum
            return (maximum if largest else minimum)(input, dim)
        if dim is None:
            _nonempty(input, (), name, True)
            out = full(input)
            if out._grad_fn is not None:
                out._grad_fn._name = name.capitalize() + "Backward1"
                out._grad_fn.rule = ("evenly",)  # a NaN result: the NaN elements share g
            return out
        idx = _arg_extreme(input, dim, True, largest, name)
        if input.ndim == 0:
            _dim(dim, 0)
            values = input.clone()
        else:
            values = take_along_dim(input, idx, _dim(dim, input.ndim))
        if values._grad_fn is not None:
            values._grad_fn._name = name.capitalize() + "Backward0"
        if not keepdim:
            values = values.squeeze(dim)
            idx = idx.squeeze(dim)
            if values._grad_fn is not None:
                values._grad_fn._name = name.capitalize() + "Backward0"  # PyTorch's name
        return values_indices(values, idx)
    fn.__name__ = name
    fn.__doc__ = (f"`{name}(x)`: the {name}imum; `{name}(x, dim)`: (values, indices); "
                  f"`{name}(x, other)`: elementwise.")
    return fn


max = _max_min(True)
min = _max_min(False)


def take_along_dim(input: Tensor, indices: Tensor, dim: int) -> Tensor:
    """`torch.take_along_dim` for same-rank index tensors along one dim."""
    from .indexing import take_along
    return take_along(input, indices, dim)


def _var_node(x: Node, axes, correction, keepdim: bool) -> Node:
    count = 1
    for a in axes:
        count *= x.shape[a]
    m = b.expand_to(_mean_node(x, axes, True), x.shape)
    d = node(Op.SUB, (x, m))
    s = _reduce_node(Op.REDUCE_SUM, node(Op.MUL, (d, d)), axes, keepdim)
    # NOTE: as torch, no degrees of freedom left (correction >= N) divide by 0: inf
    # for a positive sum of squares, NaN for zero (an empty or constant input)
    return node(Op.DIV, (s, b.like(s, builtins.max(0, count - correction))))


def _dof_warning(what: str, x: Node, axes, correction) -> None:
    count = math.prod(x.shape[a] for a in axes)
    if count - correction <= 0:
        warnings.warn(f"{what}(): degrees of freedom is <= 0. Correction should be strictly "
                      "less than the reduction factor (input numel divided by output numel).",
                      UserWarning, stacklevel=3)


def _var_stops(x: Node, axes) -> tuple[Node]:
    """The mean a variance subtracts, as a node its gradient stops at: the gradient
    through it is sum(x - mean) * ... = 0 exactly, and PyTorch's formula leaves it
    out (so an infinite element gives -inf to the others, not NaN)."""
    return (_mean_node(x, axes, True),)


def _correction(unbiased, correction) -> float:
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def _safe_root(s: Node, p: float) -> Node:
    """s ** (1 / p) whose gradient at s = 0 is 0 (torch's norm at 0), not inf * 0."""
    zero = node(Op.EQ, (s, b.like(s, 0)))
    root = node(Op.POW, (b.where(zero, b.like(s, 1), s), b.like(s, 1.0 / p)))
    return b.where(zero, b.like(s, 0), root)


def _safe_sqrt(s: Node) -> Node:
    """sqrt(s) whose gradient at s = 0 is 0 (as torch's norm and std give), not NaN."""
    zero = node(Op.EQ, (s, b.like(s, 0)))
    return b.where(zero, b.like(s, 0), node(Op.SQRT, (b.where(zero, b.like(s, 1), s),)))


def var(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *,
        correction=None) -> Tensor:
    """Variance with Bessel's correction by default (`correction=1`)."""
    if isinstance(unbiased, (int, tuple, list)) and not isinstance(unbiased, bool) \
            and dim is not None:
        raise TypeError("var(): pass keepdim by keyword")
    _need_float(input, "var")
    axes = _dims(dim, input.ndim)
    x = input.node
    c = _correction(unbiased, correction)
    _dof_warning("var", x, axes, c)
    w = _widened(x)
    n = b.cast(_var_node(w, axes, c, keepdim), x.dtype)
    return result(n, (input,), "VarBackward0", (x,), stops=_var_stops(w, axes))


def std(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *,
        correction=None) -> Tensor:
    _need_float(input, "std")
    axes = _dims(dim, input.ndim)
    x = input.node
    c = _correction(unbiased, correction)
    _dof_warning("std", x, axes, c)
    w = _widened(x)
    n = _safe_sqrt(_var_node(w, axes, c, keepdim))
    return result(b.cast(n, x.dtype), (input,), "StdBackward0", (x,), stops=_var_stops(w, axes))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return (var(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return (std(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


def norm(input: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Vector p-norm over `dim` (2 / 'fro' by default; also inf, -inf, 0, 1, any p)."""
    _need_float(input, "norm", dtype)
    axes = _dims(dim, input.ndim)
    raw = input.node
    x = _widened(raw)
    a = node(Op.ABS, (x,))
    if p in ("fro", 2, 2.0):
        n = _safe_sqrt(_reduce_node(Op.REDUCE_SUM, node(Op.MUL, (x, x)), axes, keepdim))
    elif p == math.inf:
        n = _reduce_node(Op.REDUCE_MAX, a, axes, keepdim)
    elif p == -math.inf:
        n = _reduce_node(Op.REDUCE_MIN, a, axes, keepdim)
    elif p == 0:
        n = _reduce_node(Op.REDUCE_SUM, b.cast(node(Op.NE, (x, b.like(x, 0))), x.dtype),
                         axes, keepdim)
    elif p == 1:
        n = _reduce_node(Op.REDUCE_SUM, a, axes, keepdim)
    elif isinstance(p, (int, float)):
        s = _reduce_node(Op.REDUCE_SUM, node(Op.POW, (a, b.like(a, p))), axes, keepdim)
        n = _safe_root(s, p)
    else:
        raise ValueError(f"norm: unsupported p={p!r}; use a number, inf, -inf or 'fro'")
    out = result(b.cast(n, raw.dtype), (input,), "LinalgVectorNormBackward0", (raw,))
    if p in (math.inf, -math.inf) and out._grad_fn is not None:
        out._grad_fn.rule = ("norm_inf", axes)
    return out


def _logsumexp_node(x: Node, axes, keepdim: bool) -> Node:
    if x.numel == 0:  # log(0) over empty dims; no max to shift by
        return _finish(b.full(-math.inf, x.dtype, tuple(1 if i in axes else s for i, s in
                                                       enumerate(x.shape))), axes, keepdim,
                       x.shape)
    m = _shift(x, axes)
    e = node(Op.EXP, (node(Op.SUB, (x, b.expand_to(m, x.shape))),))
    s = node(Op.ADD, (node(Op.LOG, (b.reduce(Op.REDUCE_SUM, e, axes),)), m))
    return _finish(s, axes, keepdim, x.shape)


def _shift(x: Node, axes) -> Node:
    """The max over `axes` that logsumexp subtracts before exp (0 where it is infinite).

    Its gradient cancels exactly (the result does not depend on it), so the records
    of logsumexp and log_softmax stop there (`stops`), as PyTorch's formulas do.
    """
    m = b.reduce(Op.REDUCE_MAX, x, axes)
    # NOTE: an all -inf row would give inf - inf = NaN; shift by 0 there instead.
    return b.where(node(Op.EQ, (node(Op.ABS, (m,)), b.like(m, math.inf))), b.like(m, 0), m)


def logsumexp(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) over `dim`, computed stably."""
    if dim is None:
        raise TypeError("logsumexp() missing required argument 'dim'")
    x = input.node
    if not x.dtype.is_floating_point:
        x = b.cast(x, dt.default_float())
    axes = _dims(dim, input.ndim)
    return result(_logsumexp_node(x, axes, keepdim), (input,), "LogsumexpBackward0",
                  (input.node,), stops=(_shift(x, axes),) if x.numel else ())


def _softmax_input(input: Tensor, dim, dtype, what: str):
    """(input node, node to compute on, axis, result dtype), or the result itself for an
    empty integer input (returned as is, as torch returns it)."""
    if dim is None:
        raise TypeError(f"{what}() missing required argument 'dim' (PyTorch's implicit dim "
                        "choice is deprecated; pass dim=-1 for rows)")
    raw = input.node
    x = b.cast(raw, dt.to_dtype(dtype)) if dtype is not None else raw
    axis = _dim(dim, input.ndim)
    if not x.dtype.is_floating_point:
        if x.numel == 0:
            return wrap_node(b.zeros(x.dtype, x.shape))
        raise NotImplementedError(f"{what}(): not implemented for {x.dtype} input; pass "
                                  f"dtype=em.float32 or convert the input with .float()")
    out = x.dtype
    if out in (dt.float16, dt.bfloat16):
        # NOTE: as torch, half precision is computed in float32 and rounded once: x - lse
        # rounded step by step would lose all digits of small log-probabilities.
        x = b.cast(x, dt.float32)
    return raw, x, axis, out


def _shifted(x: Node, axis: int) -> tuple[Node, Node]:
    """(x - max along axis, that max).

    NOTE: as torch, an infinite max is subtracted too (inf - inf is NaN): a row
    holding +inf, or only -inf, gives NaN everywhere, and so does a 0-d or size-1 NaN.
    """
    m = b.reduce(Op.REDUCE_MAX, x, (axis,)) if x.ndim else x
    return node(Op.SUB, (x, b.expand_to(m, x.shape))), m


def softmax(input: Tensor, dim=None, dtype=None) -> Tensor:
    """exp(x - max) * (1 / sum(exp(x - max))) along `dim`.

    As PyTorch's CPU kernel does, the row's sum is inverted once and multiplied in
    (a product is cheaper than a quotient on every element; within 1 ulp of it).
    """
    got = _softmax_input(input, dim, dtype, "softmax")
    if isinstance(got, Tensor):
        return got
    raw, x, axis, out = got
    if x.numel == 0:
        return result(b.full(1.0, out, x.shape), (input,), "SoftmaxBackward0", (raw,))
    d, m = _shifted(x, axis)
    e = node(Op.EXP, (d,))
    axes = (axis,) if x.ndim else ()
    r = node(Op.RECIP, (b.reduce(Op.REDUCE_SUM, e, axes),))
    # NOTE: the gradient through the row max cancels exactly; PyTorch's formula
    # (and this record) leaves it out
    return result(b.cast(node(Op.MUL, (e, b.expand_to(r, x.shape))), out), (input,),
                  "SoftmaxBackward0", (raw,), stops=(m,))


def log_softmax(input: Tensor, dim=None, dtype=None) -> Tensor:
    """(x - max) - log(sum(exp(x - max))) along `dim`."""
    got = _softmax_input(input, dim, dtype, "log_softmax")
    if isinstance(got, Tensor):
        return got
    raw, x, axis, out = got
    if x.numel == 0:
        return result(b.zeros(out, x.shape), (input,), "LogSoftmaxBackward0", (raw,))
    d, m = _shifted(x, axis)
    axes = (axis,) if x.ndim else ()
    lse = node(Op.LOG, (b.reduce(Op.REDUCE_SUM, node(Op.EXP, (d,)), axes),))
    return result(b.cast(node(Op.SUB, (d, b.expand_to(lse, x.shape))), out), (input,),
                  "LogSoftmaxBackward0", (raw,), stops=(m,))


def _logical_reduce(op: Op, input: Tensor, dim, keepdim: bool) -> Tensor:
    # NOTE: as torch: `dim=()` reduces nothing here, and uint8 inputs give uint8 (0 or 1).
    axes = () if isinstance(dim, (list, tuple)) and not dim else _dims(dim, input.ndim)
    x = input.node
    if x.numel == 0:  # all() of nothing is True, any() False
        kept = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
        n = _finish(b.full(op is Op.REDUCE_MIN, dt.uint8, kept), axes, keepdim, x.shape)
    else:
        nz = b.cast(x, dt.bool_) if x.dtype is not dt.bool_ else x
        n = _reduce_node(op, b.cast(nz, dt.uint8), axes, keepdim)
    return wrap_node(b.cast(n, dt.uint8 if x.dtype is dt.uint8 else dt.bool_))


def all(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element (along `dim`) is nonzero."""
    return _logical_reduce(Op.REDUCE_MIN, input, dim, keepdim)


def any(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where some element (along `dim`) is nonzero."""
    return _logical_reduce(Op.REDUCE_MAX, input, dim, keepdim)


def count_nonzero(input: Tensor, dim=None) -> Tensor:
    axes = _dims(dim, input.ndim)
    x = input.node
    return wrap_node(_reduce_node(Op.REDUCE_SUM, b.cast(b.cast(x, dt.bool_), dt.int64), axes,
                                  False))


def cumsum(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running sum along `dim` (integers and bools accumulate as int64)."""
    axis = _dim(dim, input.ndim)
    x = input.node
    xc = b.cast(x, _sum_dtype(input, dtype))
    if xc.ndim == 0:
        return result(xc, (input,), "CumsumBackward0", (x,))
    return result(node(Op.CUMSUM, (xc,), axis), (input,), "CumsumBackward0", (x,))


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    axis = _dim(dim, input.ndim)
    if input.ndim == 0:
        return wrap_node(b.zeros(dt.int64, ()))
    return wrap_node(node(Op.ARGSORT, (input.node,), (axis, bool(descending))))


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """(values, indices) sorted along `dim`; NaN sorts as the largest value."""
    idx = argsort(input, dim, descending)
    if input.ndim == 0:
        return values_indices(input.clone(), idx)
    values = take_along_dim(input, idx, _dim(dim, input.ndim))
    if values._grad_fn is not None:
        values._grad_fn._name = "SortBackward0"
    return values_indices(values, idx)


def _quantile(input: Tensor, q, dim, keepdim: bool, interpolation: str, ignore_nan: bool):
    from .creation import tensor
    from .elementwise import where as where_
    if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise ValueError(f"quantile() interpolation must be one of linear, lower, higher, "
                         f"midpoint or nearest. Got {interpolation}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"quantile() input tensor must be either float or double dtype, "
                           f"got {input.dtype}")
    scalar_q = not isinstance(q, Tensor)
    qt = tensor(q, dtype=input.dtype) if scalar_q else q.to(input.dtype)
    if qt.ndim > 1:
        raise RuntimeError("quantile() q must be a scalar or 1D tensor")
    qv = qt.detach().numpy().reshape(-1)
    if ((qv < 0) | (qv > 1)).any():
        raise RuntimeError("quantile() q values must be in the range [0, 1]")
    x = input.reshape(-1) if dim is None else input
    axis = 0 if dim is None else _dim(dim, input.ndim)
    if x.shape[axis] == 0:
        raise IndexError("quantile() input tensor must be non-empty")
    xs = sort(x, axis).values.movedim(axis, -1)                  # (..., n)
    n = xs.shape[-1]
    isnan_last = xs[..., -1:].isnan() if not ignore_nan else None
    if ignore_nan:
        count = (~xs.isnan()).sum(-1, keepdim=True).to(input.dtype)   # (..., 1)
    else:
        count = wrap_node(b.full(n, input.dtype, tuple(xs.shape[:-1]) + (1,)))
    qs = qt.reshape(-1)                                             # (k,)
    pos = (count - 1).clamp(min=0).unsqueeze(-2) * qs.reshape(-1, 1)  # (..., k, 1)
    if interpolation == "lower":
        pos = pos.floor()
    elif interpolation == "higher":
        pos = pos.ceil()
    elif interpolation == "nearest":
        pos = pos.round()
    lo = pos.floor().clamp(max=n - 1).long()
    hi = pos.ceil().clamp(max=n - 1).long()
    rows = xs.unsqueeze(-2).expand(*xs.shape[:-1], qs.shape[0], n)
    vlo = take_along_dim(rows, lo, -1)
    vhi = take_along_dim(rows, hi, -1)
    if interpolation == "midpoint":
        w = where_(hi > lo, 0.5, 0.0).to(input.dtype)
    else:
        w = pos - lo.to(input.dtype)
    out = (vlo + (vhi - vlo) * w).squeeze(-1)                        # (..., k)
    if isnan_last is not None:
        out = where_(isnan_last.expand_as(out), float("nan"), out)
    elif ignore_nan:
        out = where_((count == 0).expand_as(out), float("nan"), out)
    out = out.movedim(-1, 0)                                          # (k, ...)
    if keepdim:
        out = out.unsqueeze(axis + 1) if dim is not None else out.reshape(
            (out.shape[0],) + (1,) * input.ndim)
    if scalar_q:
        out = out.squeeze(0)
    return out


def quantile(input: Tensor, q, dim=None, keepdim: bool = False, *,
             interpolation: str = "linear") -> Tensor:
    """The q-th quantiles along `dim` (all elements by default), as torch.quantile."""
    return _quantile(input, q, dim, keepdim, interpolation, ignore_nan=False)


def nanquantile(input: Tensor, q, dim=None, keepdim: bool = False, *,
                interpolation: str = "linear") -> Tensor:
    """`quantile` ignoring NaN (a slice of only NaN gives NaN)."""
    return _quantile(input, q, dim, keepdim, interpolation, ignore_nan=True)


def median(input: Tensor, dim=None, keepdim: bool = False):
    """The lower median (PyTorch's convention); (values, indices) when `dim` is given."""
    if dim is None:
        from .elementwise import where as where_
        flat = input.reshape(-1)
        k = (flat.shape[0] - 1) // 2
        m = sort(flat.detach()).values[k]
        hit = (flat == m) | (flat.isnan() & m.isnan())
        # NOTE: m plus a sum of exact zeros keeps the value m; the gradient is shared
        # evenly among the tied elements, as torch shares it.
        out = m + where_(hit, flat - m, 0.0).sum() / hit.sum()
        if out._grad_fn is not None:
            out._grad_fn._name = "MedianBackward0"
        return out
    axis = _dim(dim, input.ndim)
    k = (input.shape[axis] - 1) // 2
    s = sort(input, axis)
    values = s.values.narrow(axis, k, 1)
    idx = s.indices.narrow(axis, k, 1)
    if not keepdim:
        values, idx = values.squeeze(axis), idx.squeeze(axis)
    return values_indices(values, idx)
