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

import numpy as np

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, node
from ..ir.ops import Op
from . import elementwise, indexing
from .records import result
from .tensor import Tensor, _dim, copy_of, wrap_node

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


def _kept_dims(n: Node, axes, keepdim: bool, in_shape) -> Node:
    """Reduction result `n` (reduced axes kept as size 1) in the shape `keepdim` asks for."""
    if keepdim:
        return b.reshape(n, tuple(1 if i in axes else s for i, s in enumerate(in_shape)))
    return b.reshape(n, tuple(s for i, s in enumerate(in_shape) if i not in axes))


def _reduce_node(op: Op, x: Node, axes, keepdim: bool) -> Node:
    n = b.reduce(op, x, axes)
    if n is x and op is Op.REDUCE_SUM and x.dtype.is_floating_point:
        # NOTE: nothing to add up (size-1 dims, a 0-d input); as torch, the sum still
        # starts from +0.0, which turns a -0.0 into +0.0
        n = node(Op.ADD, (x, b.like(x, 0.0)))
    return _kept_dims(n, axes, keepdim, x.shape)


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
    """Sum over `dim` treating NaN as zero (all dims by default).

    Args:
        input (Tensor): the tensor to reduce.
        dim (int or tuple of ints, optional): the dims to reduce; all by default.
        keepdim (bool): keep the reduced dims with size 1.
        dtype (ember.dtype, optional): the dtype to accumulate in and return.

    Integers and bools sum as int64, like `em.sum`.

    >>> em.nansum(em.tensor([1.0, float("nan"), 3.0]))
    tensor(4.)
    """
    axes = _dims(dim, input.ndim)
    x = input.node
    clean = b.where(node(Op.NE, (x, x)), b.like(x, 0), x) if x.dtype.is_floating_point else x
    n = _reduce_node(Op.REDUCE_SUM, b.cast(clean, _sum_dtype(input, dtype)), axes, keepdim)
    return _nan_rule(result(n, (input,), "NansumBackward0", (x,)), axes, False)


def _nan_rule(out: Tensor, axes, mean: bool) -> Tensor:
    """nansum's and nanmean's gradient is PyTorch's formula (NaN where a slice holds only
    NaN, for the mean), not the primitives' (0 there)."""
    if out._grad_fn is not None:
        out._grad_fn.rule = ("nan_reduce", axes, mean)
    return out


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
    """Mean over `dim` of the elements that are not NaN (floating-point inputs only).

    Args:
        input (Tensor): a floating-point tensor.
        dim (int or tuple of ints, optional): the dims to reduce; all by default.
        keepdim (bool): keep the reduced dims with size 1.

    A slice of NaNs only gives NaN. The result has input's dtype. As PyTorch's, it is
    `nansum(x) / (~x.isnan()).sum()`, so its record is that division's.

    >>> em.nanmean(em.tensor([1.0, float("nan"), 3.0]))
    tensor(2.)
    """
    _need_float(input, "nanmean")
    count = sum(elementwise.logical_not(elementwise.isnan(input)), dim, keepdim)
    return elementwise.div(nansum(input, dim, keepdim), count)


def prod(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Product of the elements, over one `dim` or all of them.

    Args:
        input (Tensor): the tensor to reduce.
        dim (int, optional): the dim to reduce (a single one, as in PyTorch); all by default.
        keepdim (bool): keep the reduced dim with size 1.
        dtype (ember.dtype, optional): the dtype to multiply in and return.

    Integers and bools multiply as int64.

    >>> x = em.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> em.prod(x)
    tensor(24.)
    >>> em.prod(x, 1)
    tensor([ 2., 12.])
    """
    if isinstance(dim, (list, tuple)):
        raise TypeError("prod(): argument 'dim' must be int, not a sequence")
    axes = _dims(dim, input.ndim)
    x = input.node
    n = _reduce_node(Op.REDUCE_PROD, b.cast(x, _sum_dtype(input, dtype)), axes, keepdim)
    out = result(n, (input,), "ProdBackward0" if dim is None else "ProdBackward1", (x,))
    if out._grad_fn is not None:  # PyTorch's formula at zeros, infinities and NaN
        out._grad_fn.rule = ("prod", axes, dim is None)
    return out


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
            n = _kept_dims(b.zeros(x.dtype, x.shape), axes, keepdim, x.shape)
        elif axes and x.dtype.is_floating_point and builtins.all(x.shape[a] == 1 for a in axes):
            # NOTE: a reduction over size-1 dims only is still one for autograd: as
            # PyTorch's, its gradient is NaN at a NaN (the element never equals the
            # result), where an identity would pass the cotangent through
            n = _kept_dims(node(op, (x,), tuple(sorted(axes))), axes, keepdim, x.shape)
        else:
            n = _reduce_node(op, x, axes, keepdim)
        return result(n, (input,), name.capitalize() + "Backward0", (x,))
    amax_fn.__name__ = name
    return amax_fn


amax = _extreme(Op.REDUCE_MAX, "amax")
amin = _extreme(Op.REDUCE_MIN, "amin")

_EXTREME_DOC = """The {what} over `dim` (all dims by default), of input's dtype.

    Args:
        input (Tensor): the tensor to reduce.
        dim (int or tuple of ints, optional): the dims to reduce; all by default.
        keepdim (bool): keep the reduced dims with size 1.

    NaN propagates. Unlike `em.{other}`, no indices are returned, and the gradient
    is shared evenly between tied elements.

    >>> em.{name}(em.tensor([[1.0, 4.0], [3.0, 2.0]]), 0)
    {example}
    """
amax.__doc__ = _EXTREME_DOC.format(what="maximum", other="max", name="amax",
                                   example="tensor([3., 4.])")
amin.__doc__ = _EXTREME_DOC.format(what="minimum", other="min", name="amin",
                                   example="tensor([1., 2.])")


def _arg_extreme(input: Tensor, dim, keepdim: bool, largest: bool, what: str) -> Tensor:
    x = input
    if dim is None:
        x = input.reshape(-1)
        axis = 0
    else:
        axis = _dim(dim, input.ndim)
    if x.ndim == 0:
        return wrap_node(b.zeros(dt.int64, ()), input._storage.device)
    _nonempty(x, (axis,), what, dim is None)
    xn = x.node
    if input.numel() == 0:  # an empty result: no reduction to build
        return wrap_node(_kept_dims(b.zeros(dt.int64, xn.shape), (axis,), keepdim, xn.shape),
                         input._storage.device)
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
        return wrap_node(b.reshape(idx, (1,) * input.ndim if keepdim else ()),
                         input._storage.device)
    return wrap_node(_kept_dims(idx, (axis,), keepdim, xn.shape), input._storage.device)


def argmax(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the first maximum (NaN counts as the maximum)."""
    return _arg_extreme(input, dim, keepdim, True, "argmax")


def argmin(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the first minimum, over all elements (flattened) or along `dim`.

    Args:
        input (Tensor): the tensor to search.
        dim (int, optional): the dim to reduce; by default the index into the flattened tensor.
        keepdim (bool): keep the reduced dim with size 1.

    The result is an int64 tensor; NaN counts as the minimum.

    >>> em.argmin(em.tensor([3.0, 1.0, 2.0]))
    tensor(1)
    """
    return _arg_extreme(input, dim, keepdim, False, "argmin")


def _max_min(largest: bool):
    name = "max" if largest else "min"
    full = amax if largest else amin

    def fn(input: Tensor, dim=None, keepdim: bool = False):
        if isinstance(dim, Tensor):
            return (elementwise.maximum if largest else elementwise.minimum)(input, dim)
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
    return indexing.take_along(input, indices, dim)


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
    """Standard deviation over `dim`, with Bessel's correction by default.

    Args:
        input (Tensor): a floating-point tensor.
        dim (int or tuple of ints, optional): the dims to reduce; all by default.
        unbiased (bool, optional): the old spelling of `correction` (True is 1, False is 0).
        keepdim (bool): keep the reduced dims with size 1.
        correction (int, optional): divide by `N - correction` (1 by default).

    The result has input's dtype; too few elements give NaN with PyTorch's warning.

    >>> em.std(em.tensor([1.0, 3.0]))
    tensor(1.4142)
    >>> em.std(em.tensor([1.0, 3.0]), correction=0)
    tensor(1.)
    """
    _need_float(input, "std")
    axes = _dims(dim, input.ndim)
    x = input.node
    c = _correction(unbiased, correction)
    _dof_warning("std", x, axes, c)
    w = _widened(x)
    n = _safe_sqrt(_var_node(w, axes, c, keepdim))
    return result(b.cast(n, x.dtype), (input,), "StdBackward0", (x,), stops=_var_stops(w, axes))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """The tuple `(var(input, ...), mean(input, ...))` over the same dims.

    Arguments are those of `em.var`; both results have input's dtype.

    >>> em.var_mean(em.tensor([[1.0, 2.0], [3.0, 4.0]]), 0)
    (tensor([2., 2.]), tensor([2., 3.]))
    """
    return (var(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """The tuple `(std(input, ...), mean(input, ...))` over the same dims.

    Arguments are those of `em.std`; both results have input's dtype.

    >>> em.std_mean(em.tensor([1.0, 3.0]))
    (tensor(1.4142), tensor(2.))
    """
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
        return _kept_dims(b.full(-math.inf, x.dtype, tuple(1 if i in axes else s for i, s in
                                                       enumerate(x.shape))), axes, keepdim,
                       x.shape)
    m = _shift(x, axes)
    e = node(Op.EXP, (node(Op.SUB, (x, b.expand_to(m, x.shape))),))
    s = node(Op.ADD, (node(Op.LOG, (b.reduce(Op.REDUCE_SUM, e, axes),)), m))
    return _kept_dims(s, axes, keepdim, x.shape)


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
            return wrap_node(b.zeros(x.dtype, x.shape), input._storage.device)
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
        n = _kept_dims(b.full(op is Op.REDUCE_MIN, dt.uint8, kept), axes, keepdim, x.shape)
    else:
        nz = b.cast(x, dt.bool_) if x.dtype is not dt.bool_ else x
        n = _reduce_node(op, b.cast(nz, dt.uint8), axes, keepdim)
    return wrap_node(b.cast(n, dt.uint8 if x.dtype is dt.uint8 else dt.bool_),
                     input._storage.device)


def all(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element (along `dim`) is nonzero."""
    return _logical_reduce(Op.REDUCE_MIN, input, dim, keepdim)


def any(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where some element (along `dim`) is nonzero."""
    return _logical_reduce(Op.REDUCE_MAX, input, dim, keepdim)


def count_nonzero(input: Tensor, dim=None) -> Tensor:
    """Number of nonzero elements over `dim` (all dims by default), an int64 tensor.

    Args:
        input (Tensor): the tensor to count in (NaN counts as nonzero).
        dim (int or tuple of ints, optional): the dims to reduce; all by default.

    >>> x = em.tensor([[0, 1], [2, 3]])
    >>> em.count_nonzero(x)
    tensor(3)
    >>> em.count_nonzero(x, 0)
    tensor([1, 2])
    """
    axes = _dims(dim, input.ndim)
    x = input.node
    return wrap_node(_reduce_node(Op.REDUCE_SUM, b.cast(b.cast(x, dt.bool_), dt.int64), axes,
                                  False), input._storage.device)


def cumsum(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running sum along `dim` (integers and bools accumulate as int64)."""
    axis = _dim(dim, input.ndim)
    x = input.node
    xc = b.cast(x, _sum_dtype(input, dtype))
    if xc.ndim == 0:
        return result(xc, (input,), "CumsumBackward0", (x,))
    return result(node(Op.CUMSUM, (xc,), axis), (input,), "CumsumBackward0", (x,))


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """The indices that sort `input` along `dim`, an int64 tensor of input's shape.

    Args:
        input (Tensor): the tensor to sort.
        dim (int): the dim to sort along (the last by default).
        descending (bool): largest first.
        stable (bool): accepted for PyTorch compatibility; the sort is always stable.

    NaN sorts as the largest value. The indices are not differentiable.

    >>> em.argsort(em.tensor([3.0, 1.0, 2.0]))
    tensor([1, 2, 0])
    """
    axis = _dim(dim, input.ndim)
    if input.ndim == 0:
        return wrap_node(b.zeros(dt.int64, ()), input._storage.device)
    return wrap_node(node(Op.ARGSORT, (input.node,), (axis, bool(descending))),
                     input._storage.device)


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
    if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise ValueError(f"quantile() interpolation must be one of linear, lower, higher, "
                         f"midpoint or nearest. Got {interpolation}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"quantile() input tensor must be either float or double dtype, "
                           f"got {input.dtype}")
    scalar_q = not isinstance(q, Tensor)
    qt = copy_of(q, dtype=input.dtype) if scalar_q else q.to(input.dtype)
    if qt.ndim > 1:
        raise RuntimeError("quantile() q must be a scalar or 1D tensor")
    qv = qt._array().reshape(-1)  # NOTE: reads, never shares (numpy() would)
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
        count = wrap_node(b.full(n, input.dtype, tuple(xs.shape[:-1]) + (1,)),
                          input._storage.device)
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
        w = elementwise.where(hi > lo, 0.5, 0.0).to(input.dtype)
    else:
        w = pos - lo.to(input.dtype)
    out = (vlo + (vhi - vlo) * w).squeeze(-1)                        # (..., k)
    if isnan_last is not None:
        out = elementwise.where(isnan_last.expand_as(out), float("nan"), out)
    elif ignore_nan:
        out = elementwise.where((count == 0).expand_as(out), float("nan"), out)
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


def _no_bool_median(input: Tensor, what: str) -> None:
    """PyTorch's error for a median of bools."""
    if input.dtype is dt.bool_:
        raise NotImplementedError(f"\"{what}\" not implemented for 'Bool'")


def _median_all(input: Tensor) -> Tensor:
    """median() of every element: the lower median in the input's dtype, NaN when an
    element is NaN; the elements equal to it (the NaN ones) share its gradient."""
    _no_bool_median(input, "median_cpu")
    x = input.node
    n = input.numel()
    if n == 0:
        # NOTE: torch fills NaN into the result: an integer result holds NaN cast to its
        # dtype, as NumPy casts it
        with np.errstate(invalid="ignore"):
            value = np.array(math.nan).astype(x.dtype.np).item()
        return result(b.full(value, x.dtype, ()), (input,), "MedianBackward0", (x,))
    flat = input.detach().reshape(-1)
    ordered = take_along_dim(flat, argsort(flat), 0).node
    m = node(Op.SLICE, (ordered,), (((n - 1) // 2, (n - 1) // 2 + 1, 1),))
    if x.dtype.is_floating_point:
        # NaN sorts last: a NaN there means the input holds one, and it is the median
        last = node(Op.SLICE, (ordered,), ((n - 1, n, 1),))
        m = b.where(node(Op.NE, (last, last)), last, m)
    out = result(b.reshape(m, ()), (input,), "MedianBackward0", (x,))
    if out._grad_fn is not None:
        out._grad_fn.rule = ("evenly",)  # PyTorch's evenly_distribute_backward
    return out


def _median_index(input: Tensor, axis: int) -> Tensor:
    """The index of the median along `axis` (kept with size 1): the lower median of a
    stable sort, or the first NaN of a slice holding one, as torch picks them."""
    x = input.node
    size = x.shape[axis]
    kept = tuple(1 if i == axis else s for i, s in enumerate(x.shape))
    pos = b.full((size - 1) // 2, dt.int64, kept)
    if x.dtype.is_floating_point:
        # NOTE: the stable sort puts a slice's k NaNs last in their order: its first
        # NaN sorts to size - k
        nans = b.reduce(Op.REDUCE_SUM, b.cast(node(Op.NE, (x, x)), dt.int64), (axis,))
        pos = b.where(node(Op.LT, (b.like(nans, 0), nans)),
                      node(Op.SUB, (b.like(nans, size), nans)), pos)
    return take_along_dim(argsort(input, axis), wrap_node(pos, input._storage.device), axis)


def median(input: Tensor, dim=None, keepdim: bool = False):
    """The lower median (PyTorch's convention); (values, indices) when `dim` is given.

    As torch: integer inputs keep their dtype, and NaN is the median of a slice
    holding one (with the index of its first NaN).
    """
    if dim is None:
        return _median_all(input)
    _no_bool_median(input, "median_out")
    axis = _dim(dim, input.ndim)
    if input.ndim == 0:
        return values_indices(input.clone(), wrap_node(b.zeros(dt.int64, ()),
                                                       input._storage.device))
    _nonempty(input, (axis,), "median", False)
    x = input.node
    if input.numel() == 0:  # an empty result: nothing to select
        kept = tuple(1 if i == axis else s for i, s in enumerate(x.shape))
        # NOTE: still a result of input for autograd (requires_grad follows it, as torch)
        values = result(_kept_dims(b.zeros(x.dtype, kept), (axis,), keepdim, x.shape), (input,),
                        "MedianBackward1", (x,))
        return values_indices(
            values, wrap_node(_kept_dims(b.zeros(dt.int64, kept), (axis,), keepdim, x.shape),
                              input._storage.device))
    idx = _median_index(input, axis)
    values = take_along_dim(input, idx, axis)
    if values._grad_fn is not None:
        values._grad_fn._name = "MedianBackward1"
    if not keepdim:
        values, idx = values.squeeze(axis), idx.squeeze(axis)
    return values_indices(values, idx)


# Tensor methods: `t.sum(0)` is `sum(t, 0)`
for _name in __all__:
    setattr(Tensor, _name, globals()[_name])
