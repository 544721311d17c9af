"""Gradient checks: every differentiable op of API.md against finite differences and torch.

One helper, `check_grads` (after JAX's), takes a function `fn(m, *tensors)` written
once for both libraries (`m` is `ember` or `torch`) and the input arrays. It
checks ember's backward against central differences of ember's own forward in
float64 and, where torch is importable, ember's forward and backward against
torch's. One table, `CASES`, drives it through `parametrize`; each case runs
with contiguous inputs and again with inputs that are strided views of a
larger leaf. `test_coverage` lists the differentiable operations named in
API.md and fails when one has no case, so the coverage figure is computed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember as em

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

EPS = 1e-6


# ---------------------------------------------------------------------------
# the helper

def _inputs(m, leaves, layout: str):
    """The function's inputs made from leaf tensors: the leaves, or strided views of them."""
    if layout == "contiguous":
        return list(leaves)
    out = []
    for leaf in leaves:
        x = leaf[1]
        if x.ndim >= 2:
            x = x.permute(*reversed(range(x.ndim)))
        out.append(x)
    return out


def _leaf_array(a: np.ndarray, layout: str) -> np.ndarray:
    """The leaf's value for input value `a` (for views: a larger, permuted array)."""
    if layout == "contiguous":
        return a
    t = a.T if a.ndim >= 2 else a
    return np.stack([np.full_like(t, 7.0), t])


def _outputs(out) -> list:
    if isinstance(out, (tuple, list)):
        return [o for o in out]
    return [out]


def _to_numpy(t) -> np.ndarray:
    if torch is not None and isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return np.asarray(t.detach())


def _loss(m, outs, cots):
    total = None
    for o, c in zip(outs, cots):
        term = (o * m.tensor(c, dtype=m.float64)).sum()
        total = term if total is None else total + term
    return total


def _numeric(fn, arrays, layout, cots) -> list[np.ndarray]:
    """Central differences of the loss w.r.t. every leaf element, from ember's forward."""
    def value(vals):
        xs = [em.tensor(v, dtype=em.float64) for v in vals]
        outs = _outputs(fn(em, *_inputs(em, xs, layout)))
        return sum(float(np.sum(_to_numpy(o) * c)) for o, c in zip(outs, cots))

    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            vals = [v.copy() for v in arrays]
            vals[k][i] += EPS
            hi = value(vals)
            vals[k][i] -= 2 * EPS
            lo = value(vals)
            g[i] = (hi - lo) / (2 * EPS)
        grads.append(g)
    return grads


def _close(actual, expected, rtol, atol, what: str) -> None:
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=what)


def check_grads(fn, arrays, *, layout: str = "contiguous", rtol: float = 1e-5,
                atol: float = 1e-6, fd_tol: float = 1e-5, seed: int = 0,
                with_torch: bool = True) -> None:
    """Check ember's gradients of `fn(m, *tensors)` at `arrays` (float64).

    The output (a tensor, or a sequence of them) is contracted with fixed random
    cotangents into a scalar loss; ember's backward of that loss is compared with
    central differences of ember's forward and, where torch is installed, with
    torch's forward and backward on the same function.
    """
    arrays = [_leaf_array(np.asarray(a, dtype=np.float64), layout) for a in arrays]
    leaves = [em.tensor(a, dtype=em.float64, requires_grad=True) for a in arrays]
    outs = _outputs(fn(em, *_inputs(em, leaves, layout)))
    rng = np.random.default_rng(seed)
    cots = [rng.uniform(0.5, 1.5, tuple(o.shape)) for o in outs]
    _loss(em, outs, cots).backward()
    grads = [np.zeros_like(a) if x.grad is None else np.asarray(x.grad) for x, a in
             zip(leaves, arrays)]
    for k, (g, n) in enumerate(zip(grads, _numeric(fn, arrays, layout, cots))):
        _close(g, n, fd_tol, fd_tol, f"gradient of input {k} vs finite differences")
    if torch is None or not with_torch:
        return
    tleaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    touts = _outputs(fn(torch, *_inputs(torch, tleaves, layout)))
    assert len(touts) == len(outs)
    for o, t in zip(outs, touts):
        assert tuple(o.shape) == tuple(t.shape), "output shape differs from torch's"
        _close(_to_numpy(o), _to_numpy(t), rtol, atol, "forward vs torch")
    _loss(torch, touts, cots).backward()
    for k, (g, t) in enumerate(zip(grads, tleaves)):
        tg = np.zeros_like(g) if t.grad is None else t.grad.numpy()
        _close(g, tg, rtol, atol, f"gradient of input {k} vs torch")


# ---------------------------------------------------------------------------
# input domains

def _any(shape, rng):
    return rng.uniform(-2, 2, shape)


def _pos(shape, rng):
    return rng.uniform(0.5, 2, shape)


def _unit(shape, rng):
    return rng.uniform(-0.9, 0.9, shape)


def _distinct(shape, rng):
    """Well-separated values away from 0, integers and halves (no ties, no kinks)."""
    n = int(np.prod(shape))
    vals = (np.arange(n) - n // 2) * 0.31 + 0.13
    return rng.permutation(vals).reshape(shape)


def _zeros_in(count):
    def make(shape, rng):
        a = rng.uniform(0.5, 2, shape) * rng.choice([-1, 1], shape)
        flat = a.reshape(-1)
        flat[rng.choice(flat.size, count, replace=False)] = 0.0
        return a
    return make


def _with_nan(shape, rng):
    a = _distinct(shape, rng)
    a.reshape(-1)[1] = np.nan
    return a


DOMAINS = {"any": _any, "pos": _pos, "unit": _unit, "distinct": _distinct,
           "zero1": _zeros_in(1), "zero2": _zeros_in(2), "nan": _with_nan}


# ---------------------------------------------------------------------------
# the table: name -> (fn(m, *xs), input shapes, domain[s])
# A name is the API.md operation, optionally followed by [variant].

def _setitem_basic(m, x, v):
    y = x.clone()
    y[1] = v
    return y


def _setitem_slice_broadcast(m, x, v):
    y = x * 1
    y[:, ::2] = v
    return y


def _setitem_advanced(m, x, v):
    y = x.clone()
    y[m.tensor([2, 0])] = v
    return y


def _setitem_mask(m, x):
    y = x.clone()
    y[y > 0] = 0.5
    return y * x


def _setitem_scalar_view(m, x):
    y = x.clone()
    y[..., 1:] = 0.0
    return y


def _setitem_into_constant(m, v):
    y = m.zeros(3, 2, dtype=m.float64)
    y[1:] = v
    return y * 2


def _inplace(method, *args):
    def fn(m, x, *others):
        y = x.clone()
        getattr(y, method)(*(others or args))
        return y
    fn.__name__ = method
    return fn


def _inplace_view_row(m, x, w):
    y = x * 2
    y[0].mul_(w)
    return y


def _inplace_view_transposed(m, x):
    y = x.clone()
    y.t()[1].exp_()
    return y.sin()


def _inplace_view_flat(m, x, w):
    y = x.contiguous().clone()  # a clone keeps a transposed input's layout: no flat view
    flat = y.view(-1)
    flat[1:5:2].add_(w)
    return y, flat


def _inplace_view_then_use_view(m, x):
    y = x.clone()
    v = y[:, 1]
    y.mul_(3)
    return v * v


def _inplace_chain(m, x, w):
    y = x + 0
    y.mul_(w).add_(w).div_(2)
    y.pow_(2)
    return y


def _copy_into_view(m, x, v):
    y = x.clone()
    y[1:].copy_(v)
    return y


def _zero_view(m, x):
    y = x.clone()
    y[:, 0].zero_()
    return y * x


def _fill_view(m, x):
    y = x.clone()
    y[0].fill_(2.0)
    return y * x


def _split(m, x):
    return list(x.split([1, 2], dim=1))


def _chunk(m, x):
    return list(x.chunk(2, dim=0))


CASES = {
    # -- arithmetic ---------------------------------------------------------
    "add": (lambda m, x, y: m.add(x, y), [(2, 3), (2, 3)], "any"),
    "add[broadcast]": (lambda m, x, y: m.add(x, y), [(3, 1), (4,)], "any"),
    "add[alpha]": (lambda m, x, y: m.add(x, y, alpha=2.5), [(2, 3), (3,)], "any"),
    "add[scalar]": (lambda m, x: x + 3.0, [(4,)], "any"),
    "sub": (lambda m, x, y: m.sub(x, y), [(2, 1, 3), (4, 1)], "any"),
    "sub[alpha]": (lambda m, x, y: m.sub(x, y, alpha=0.5), [(3,), (3,)], "any"),
    "mul": (lambda m, x, y: m.mul(x, y), [(2, 3), (2, 1)], "any"),
    "mul[same tensor]": (lambda m, x: m.mul(x, x), [(5,)], "any"),
    "multiply": (lambda m, x, y: m.multiply(x, y), [(3,), (2, 3)], "any"),
    "div": (lambda m, x, y: m.div(x, y), [(2, 3), (3,)], ["any", "pos"]),
    "div[scalar numerator]": (lambda m, x: 2.0 / x, [(4,)], "pos"),
    "pow": (lambda m, x: m.pow(x, 3), [(2, 3)], "any"),
    "pow[fractional]": (lambda m, x: x ** 2.5, [(4,)], "pos"),
    "pow[tensor exponent]": (lambda m, x, y: m.pow(x, y), [(2, 3), (3,)], ["pos", "any"]),
    "pow[scalar base]": (lambda m, x: 2.0 ** x, [(4,)], "any"),
    "pow[zero exponent]": (lambda m, x: x ** 0, [(3,)], "any"),
    "pow[negative exponent]": (lambda m, x: x ** -2, [(3,)], "pos"),
    "neg": (lambda m, x: m.neg(x), [(2, 3)], "any"),
    "abs": (lambda m, x: m.abs(x), [(3, 4)], "distinct"),
    "square": (lambda m, x: m.square(x), [(2, 3)], "any"),
    "sqrt": (lambda m, x: m.sqrt(x), [(2, 3)], "pos"),
    "rsqrt": (lambda m, x: m.rsqrt(x), [(2, 3)], "pos"),
    "exp": (lambda m, x: m.exp(x), [(2, 3)], "any"),
    "log": (lambda m, x: m.log(x), [(2, 3)], "pos"),
    "log1p": (lambda m, x: m.log1p(x), [(2, 3)], "pos"),
    "expm1": (lambda m, x: m.expm1(x), [(2, 3)], "any"),
    "sin": (lambda m, x: m.sin(x), [(2, 3)], "any"),
    "cos": (lambda m, x: m.cos(x), [(2, 3)], "any"),
    "tan": (lambda m, x: m.tan(x), [(2, 3)], "unit"),
    "tanh": (lambda m, x: m.tanh(x), [(2, 3)], "any"),
    "sigmoid": (lambda m, x: m.sigmoid(x), [(2, 3)], "any"),
    "relu": (lambda m, x: m.relu(x), [(3, 4)], "distinct"),
    "maximum": (lambda m, x, y: m.maximum(x, y), [(2, 3), (3,)], "distinct"),
    "minimum": (lambda m, x, y: m.minimum(x, y), [(2, 3), (2, 1)], "distinct"),
    "clamp": (lambda m, x: m.clamp(x, -0.5, 0.7), [(3, 4)], "distinct"),
    "clamp[min only]": (lambda m, x: x.clamp(min=0.2), [(3, 4)], "distinct"),
    "clamp[max only]": (lambda m, x: x.clamp(max=0.2), [(3, 4)], "distinct"),
    "clamp[tensor bounds]": (lambda m, x, lo: m.clamp(x, min=lo), [(3, 4), (4,)],
                             ["distinct", "any"]),
    "where": (lambda m, x, y: m.where(x > 0, x, y), [(2, 3), (3,)], "distinct"),
    "where[scalar]": (lambda m, x: m.where(x > 0, x * 2, 0.0), [(3, 3)], "distinct"),
    "sign": (lambda m, x: m.sign(x) * x, [(2, 3)], "distinct"),
    "floor": (lambda m, x: m.floor(x) * x, [(2, 3)], "distinct"),
    "ceil": (lambda m, x: m.ceil(x) + x, [(2, 3)], "distinct"),
    "round": (lambda m, x: m.round(x) * x, [(2, 3)], "distinct"),
    "reciprocal": (lambda m, x: m.reciprocal(x), [(2, 3)], "pos"),
    "nan_to_num": (lambda m, x: m.nan_to_num(x, nan=0.5), [(2, 3)], "nan"),
    "__add__": (lambda m, x, y: x + y, [(2, 3), (1, 3)], "any"),
    "__radd__": (lambda m, x: 1.5 + x, [(3,)], "any"),
    "__sub__": (lambda m, x, y: x - y, [(2, 3), (2, 1)], "any"),
    "__rsub__": (lambda m, x: 1.5 - x, [(3,)], "any"),
    "__mul__": (lambda m, x, y: x * y, [(4, 1), (3,)], "any"),
    "__rmul__": (lambda m, x: 1.5 * x, [(3,)], "any"),
    "__truediv__": (lambda m, x, y: x / y, [(2, 3), (3,)], ["any", "pos"]),
    "__rtruediv__": (lambda m, x: 1.5 / x, [(3,)], "pos"),
    "__pow__": (lambda m, x, y: x ** y, [(2, 3), (3,)], ["pos", "any"]),
    "__rpow__": (lambda m, x: 1.5 ** x, [(3,)], "any"),
    "__matmul__": (lambda m, x, y: x @ y, [(2, 3), (3, 4)], "any"),
    "__neg__": (lambda m, x: -x, [(2, 3)], "any"),
    # -- linear algebra -----------------------------------------------------
    "matmul": (lambda m, x, y: m.matmul(x, y), [(3, 4), (4, 2)], "any"),
    "matmul[vector-matrix]": (lambda m, x, y: m.matmul(x, y), [(4,), (4, 2)], "any"),
    "matmul[matrix-vector]": (lambda m, x, y: m.matmul(x, y), [(3, 4), (4,)], "any"),
    "matmul[vector-vector]": (lambda m, x, y: m.matmul(x, y), [(4,), (4,)], "any"),
    "matmul[batched]": (lambda m, x, y: m.matmul(x, y), [(2, 3, 4), (4, 2)], "any"),
    "matmul[broadcast batch]": (lambda m, x, y: m.matmul(x, y), [(2, 1, 2, 3), (3, 3, 2)],
                                "any"),
    "matmul[batched vector]": (lambda m, x, y: m.matmul(x, y), [(3,), (2, 3, 2)], "any"),
    "mm": (lambda m, x, y: m.mm(x, y), [(3, 4), (4, 2)], "any"),
    "bmm": (lambda m, x, y: m.bmm(x, y), [(2, 3, 2), (2, 2, 3)], "any"),
    "dot": (lambda m, x, y: m.dot(x, y), [(5,), (5,)], "any"),
    "mv": (lambda m, x, y: m.mv(x, y), [(3, 4), (4,)], "any"),
    "outer": (lambda m, x, y: m.outer(x, y), [(3,), (4,)], "any"),
    "t": (lambda m, x: x.t() * m.arange(3.0), [(3, 2)], "any"),
    "T": (lambda m, x: x.T * m.arange(3.0), [(3, 2)], "any"),
    "transpose": (lambda m, x: m.transpose(x, 0, 2) * m.arange(2.0), [(2, 3, 2)], "any"),
    # -- reductions ---------------------------------------------------------
    "sum": (lambda m, x: m.sum(x), [(2, 3)], "any"),
    "sum[dim]": (lambda m, x: x.sum(dim=1), [(2, 3, 2)], "any"),
    "sum[dims keepdim]": (lambda m, x: x.sum(dim=(0, 2), keepdim=True), [(2, 3, 2)], "any"),
    "mean": (lambda m, x: m.mean(x), [(2, 3)], "any"),
    "mean[dim]": (lambda m, x: x.mean(dim=-1, keepdim=True), [(2, 3)], "any"),
    "prod": (lambda m, x: m.prod(x), [(2, 3)], "any"),
    "prod[dim]": (lambda m, x: x.prod(dim=1), [(3, 4)], "any"),
    "prod[one zero]": (lambda m, x: x.prod(dim=1), [(2, 4)], "zero1"),
    "prod[two zeros]": (lambda m, x: x.prod(), [(2, 3)], "zero2"),
    "max": (lambda m, x: m.max(x), [(3, 4)], "distinct"),
    "max[dim]": (lambda m, x: m.max(x, dim=1).values, [(3, 4)], "distinct"),
    "max[dim keepdim]": (lambda m, x: x.max(0, keepdim=True).values, [(3, 4)], "distinct"),
    "max[elementwise]": (lambda m, x, y: m.max(x, y), [(3, 4), (4,)], "distinct"),
    "min": (lambda m, x: m.min(x), [(3, 4)], "distinct"),
    "min[dim]": (lambda m, x: m.min(x, dim=0).values, [(3, 4)], "distinct"),
    "amax": (lambda m, x: m.amax(x, dim=(0, 2)), [(2, 3, 2)], "distinct"),
    "amin": (lambda m, x: m.amin(x, dim=1, keepdim=True), [(2, 3, 2)], "distinct"),
    "var": (lambda m, x: m.var(x), [(3, 4)], "any"),
    "var[dim unbiased=False]": (lambda m, x: x.var(dim=1, unbiased=False), [(3, 4)], "any"),
    "var[dims keepdim]": (lambda m, x: x.var(dim=(0, 2), keepdim=True), [(2, 3, 2)], "any"),
    "std": (lambda m, x: m.std(x), [(3, 4)], "any"),
    "std[dim correction]": (lambda m, x: x.std(dim=0, correction=0), [(3, 4)], "any"),
    "norm": (lambda m, x: m.norm(x), [(3, 4)], "any"),
    "norm[dim]": (lambda m, x: x.norm(dim=1), [(3, 4)], "any"),
    "norm[p=1]": (lambda m, x: x.norm(p=1, dim=0), [(3, 4)], "distinct"),
    "norm[p=3]": (lambda m, x: x.norm(p=3), [(3, 4)], "distinct"),
    "norm[p=inf]": (lambda m, x: x.norm(p=math.inf, dim=1), [(3, 4)], "distinct"),
    "logsumexp": (lambda m, x: m.logsumexp(x, dim=1), [(3, 4)], "any"),
    "logsumexp[dims keepdim]": (lambda m, x: m.logsumexp(x, dim=(0, 1), keepdim=True),
                                [(3, 4)], "any"),
    "softmax": (lambda m, x: m.softmax(x, dim=1), [(3, 4)], "any"),
    "softmax[dim 0]": (lambda m, x: x.softmax(dim=0), [(3, 4)], "any"),
    "log_softmax": (lambda m, x: m.log_softmax(x, dim=-1), [(3, 4)], "any"),
    "cumsum": (lambda m, x: m.cumsum(x, dim=1), [(3, 4)], "any"),
    "cumsum[dim 0]": (lambda m, x: x.cumsum(0), [(3, 4)], "any"),
    "sort": (lambda m, x: m.sort(x, dim=1).values, [(3, 4)], "distinct"),
    "sort[descending dim 0]": (lambda m, x: x.sort(dim=0, descending=True).values,
                               [(3, 4)], "distinct"),
    "quantile": (lambda m, x: m.quantile(x, 0.3), [(3, 4)], "distinct"),
    "quantile[dim tensor q]": (lambda m, x: m.quantile(
        x, m.tensor([0.2, 0.75], dtype=m.float64), dim=1, keepdim=True), [(3, 5)], "distinct"),
    "quantile[midpoint]": (lambda m, x: m.quantile(x, 0.4, dim=0, interpolation="midpoint"),
                           [(4, 3)], "distinct"),
    "quantile[nearest]": (lambda m, x: m.quantile(x, 0.4, dim=0, interpolation="nearest"),
                          [(4, 3)], "distinct"),
    "nanquantile": (lambda m, x: m.nanquantile(x, 0.5, dim=1), [(3, 4)], "nan"),
    "nansum": (lambda m, x: m.nansum(x, dim=0), [(3, 4)], "nan"),
    "nanmean": (lambda m, x: m.nanmean(x, dim=1), [(3, 4)], "nan"),
    # -- shape --------------------------------------------------------------
    "view": (lambda m, x: x.view(2, 1, 3, 1) * m.arange(2.0), [(2, 3)], "any"),
    "view[merge dims]": (lambda m, x: x.contiguous().view(6) * m.arange(6.0), [(2, 3)],
                         "any"),
    "reshape": (lambda m, x: x.reshape(-1) * m.arange(6.0), [(2, 3)], "any"),
    "reshape[copy]": (lambda m, x: x.t().reshape(6) * m.arange(6.0), [(2, 3)], "any"),
    "flatten": (lambda m, x: x.flatten(1) * m.arange(6.0), [(2, 3, 2)], "any"),
    "unflatten": (lambda m, x: x.unflatten(1, (2, 2)) * m.arange(2.0), [(3, 4)], "any"),
    "squeeze": (lambda m, x: x.squeeze(1) * m.arange(3.0), [(2, 1, 3)], "any"),
    "unsqueeze": (lambda m, x: x.unsqueeze(1) * m.arange(2.0), [(3,)], "any"),
    "permute": (lambda m, x: x.permute(2, 0, 1) * m.arange(3.0), [(2, 3, 2)], "any"),
    "expand": (lambda m, x: x.expand(2, 3, 4) * m.arange(4.0), [(3, 1)], "any"),
    "expand_as": (lambda m, x, y: x.expand_as(y) * y, [(1, 3), (2, 3)], "any"),
    "broadcast_to": (lambda m, x: m.broadcast_to(x, (2, 3)) * m.arange(3.0), [(3,)], "any"),
    "contiguous": (lambda m, x: x.t().contiguous() * m.arange(2.0), [(2, 3)], "any"),
    "cat": (lambda m, x, y: m.cat([x, y, x], dim=1), [(2, 1), (2, 3)], "any"),
    "cat[dim 0]": (lambda m, x, y: m.cat([x, y]), [(1, 3), (2, 3)], "any"),
    "stack": (lambda m, x, y: m.stack([x, y], dim=1), [(2, 3), (2, 3)], "any"),
    "split": (_split, [(2, 3)], "any"),
    "chunk": (_chunk, [(4, 2)], "any"),
    "flip": (lambda m, x: m.flip(x, (0, 1)) * m.arange(3.0), [(2, 3)], "any"),
    "clone": (lambda m, x: x.clone() * m.arange(3.0), [(2, 3)], "any"),
    "double": (lambda m, x: x.double() * m.arange(3.0), [(2, 3)], "any"),
    # -- indexing and assignment -------------------------------------------------
    "getitem[int]": (lambda m, x: x[1], [(3, 4)], "any"),
    "getitem[negative int]": (lambda m, x: x[:, -1], [(3, 4)], "any"),
    "getitem[slice step]": (lambda m, x: x[::2, 1:4:2], [(3, 5)], "any"),
    "getitem[ellipsis]": (lambda m, x: x[..., 0], [(2, 3, 2)], "any"),
    "getitem[None]": (lambda m, x: x[None, :, None] * m.arange(2.0), [(3,)], "any"),
    "getitem[bool mask]": (lambda m, x: x[x > 0], [(3, 4)], "distinct"),
    "getitem[int tensor]": (lambda m, x: x[m.tensor([2, 0, 2])], [(3, 2)], "any"),
    "getitem[two int tensors]": (lambda m, x: x[m.tensor([0, 2, 2]), m.tensor([1, 1, 0])],
                                 [(3, 2)], "any"),
    "getitem[int list dim 1]": (lambda m, x: x[:, [1, 0, 1]], [(2, 3)], "any"),
    "gather": (lambda m, x: m.gather(x, 1, m.tensor([[0, 0], [2, 1]])), [(2, 3)], "any"),
    "setitem": (_setitem_basic, [(3, 2), (2,)], "any"),
    "setitem[slice broadcast]": (_setitem_slice_broadcast, [(2, 4), (2, 1)], "any"),
    "setitem[int tensor]": (_setitem_advanced, [(3, 2), (2, 2)], "any"),
    "setitem[bool mask]": (_setitem_mask, [(3, 4)], "distinct"),
    "setitem[scalar]": (_setitem_scalar_view, [(2, 3)], "any"),
    "setitem[into a constant]": (_setitem_into_constant, [(2,)], "any"),
    # -- in-place operations, on clones and through views ---------------------------
    "add_": (_inplace("add_"), [(2, 3), (3,)], "any"),
    "sub_": (_inplace("sub_", 1.5), [(2, 3)], "any"),
    "mul_": (_inplace("mul_"), [(2, 3), (2, 1)], "any"),
    "div_": (_inplace("div_"), [(2, 3), (3,)], ["any", "pos"]),
    "pow_": (_inplace("pow_", 3), [(2, 3)], "any"),
    "exp_": (_inplace("exp_"), [(2, 3)], "any"),
    "sqrt_": (_inplace("sqrt_"), [(2, 3)], "pos"),
    "clamp_": (_inplace("clamp_", -0.5, 0.5), [(3, 4)], "distinct"),
    "copy_": (_copy_into_view, [(3, 2), (2, 2)], "any"),
    "zero_": (_zero_view, [(2, 3)], "any"),
    "fill_": (_fill_view, [(2, 3)], "any"),
    "inplace[view row]": (_inplace_view_row, [(2, 3), (3,)], "any"),
    "inplace[transposed view]": (_inplace_view_transposed, [(2, 3)], "any"),
    "inplace[flat view, both returned]": (_inplace_view_flat, [(2, 3), (2,)], "any"),
    "inplace[read a view after base write]": (_inplace_view_then_use_view, [(2, 3)], "any"),
    "inplace[chain]": (_inplace_chain, [(2, 3), (3,)], "any"),
    # -- beyond API.md: other operations ember has (their primitives' rules) ------------
    "diagonal": (lambda m, x: m.diagonal(x, 1) * m.arange(2.0), [(3, 3)], "any"),
    "diagonal[batched]": (lambda m, x: x.diagonal(0, 1, 2), [(2, 3, 3)], "any"),
    "narrow": (lambda m, x: x.narrow(1, 1, 2), [(2, 4)], "any"),
    "select": (lambda m, x: x.select(0, -1), [(3, 2)], "any"),
    "movedim": (lambda m, x: m.movedim(x, 0, 2) * m.arange(2.0), [(2, 3, 2)], "any"),
    "repeat": (lambda m, x: x.repeat(2, 3) * m.arange(6.0), [(2, 2)], "any"),
    "tile": (lambda m, x: m.tile(x, (3,)) * m.arange(6.0), [(2,)], "any"),
    "unbind": (lambda m, x: list(m.unbind(x, 1)), [(2, 3)], "any"),
    "lerp": (lambda m, x, y: m.lerp(x, y, 0.3), [(2, 3), (3,)], "any"),
    "remainder": (lambda m, x: m.remainder(x, 0.7) * x, [(2, 3)], "distinct"),
    "exp2": (lambda m, x: m.exp2(x), [(2, 3)], "any"),
    "log2": (lambda m, x: m.log2(x), [(2, 3)], "pos"),
    "log10": (lambda m, x: m.log10(x), [(2, 3)], "pos"),
    "trunc": (lambda m, x: m.trunc(x) * x, [(2, 3)], "distinct"),
    "masked_fill": (lambda m, x: x.masked_fill(x > 0, 0.5) * x, [(3, 4)], "distinct"),
    "index_select": (lambda m, x: m.index_select(x, 1, m.tensor([2, 0, 2])), [(2, 3)], "any"),
    "median": (lambda m, x: m.median(x, dim=1).values, [(3, 5)], "distinct"),
    "var_mean": (lambda m, x: list(m.var_mean(x, dim=1)), [(3, 4)], "any"),
    "std_mean": (lambda m, x: list(m.std_mean(x, dim=0)), [(3, 4)], "any"),
    "div[floor rounding]": (lambda m, x, y: m.div(x, y, rounding_mode="floor") * x,
                            [(2, 3), (3,)], ["distinct", "pos"]),
    "div[trunc rounding]": (lambda m, x: m.div(x, 0.7, rounding_mode="trunc") + x, [(2, 3)],
                            "distinct"),
    "swapaxes": (lambda m, x: m.swapaxes(x, 0, 1) * m.arange(2.0), [(2, 3)], "any"),
    "reshape_as": (lambda m, x, y: x.reshape_as(y) * y, [(2, 3), (3, 2)], "any"),
    "clip": (lambda m, x: m.clip(x, -0.5, 0.5), [(3, 4)], "distinct"),
    # -- special functions
    "erf": (lambda m, x: m.erf(x), [(3, 4)], "any"),
    "erfc": (lambda m, x: x.erfc(), [(3, 4)], "any"),
    "erfinv": (lambda m, x: m.erfinv(x), [(3, 4)], "unit"),
    # -- more elementwise
    "asin": (lambda m, x: m.asin(x), [(3, 4)], "unit"),
    "acos": (lambda m, x: x.acos(), [(3, 4)], "unit"),
    "atan": (lambda m, x: m.atan(x), [(3, 4)], "any"),
    "sinh": (lambda m, x: m.sinh(x), [(3, 4)], "any"),
    "cosh": (lambda m, x: x.cosh(), [(3, 4)], "any"),
    "asinh": (lambda m, x: m.asinh(x), [(3, 4)], "any"),
    "acosh": (lambda m, x: m.acosh(x + 1.5), [(3, 4)], "pos"),
    "atanh": (lambda m, x: m.atanh(x), [(3, 4)], "unit"),
    "atan2": (lambda m, x, y: m.atan2(x, y), [(3, 4), (4,)], ["any", "pos"]),
    "hypot": (lambda m, x, y: m.hypot(x, y), [(3, 4), (3, 1)], "pos"),
    "copysign": (lambda m, x, y: m.copysign(x, y), [(3, 4), (4,)], ["pos", "distinct"]),
    "fmod": (lambda m, x, y: m.fmod(x, y), [(3, 4), (4,)], ["distinct", "pos"]),
    "fmod[scalar]": (lambda m, x: x.fmod(0.7), [(3, 4)], "distinct"),
    "lerp[tensor weight]": (lambda m, x, y, w: m.lerp(x, y, w), [(3, 4), (4,), (3, 1)],
                            ["any", "any", "unit"]),
    "lerp[scalar]": (lambda m, x, y: m.lerp(x, y, 0.7), [(3, 4), (3, 4)], "any"),
    "clamp[tensor min and max]": (lambda m, x, lo, hi: m.clamp(x, lo, hi - 0.5),
                                  [(3, 4), (4,), (3, 1)], ["distinct", "unit", "pos"]),
    "asin_": (lambda m, x: (x * 1).asin_(), [(3, 4)], "unit"),
    # -- scans, selections, triangles
    "cumprod": (lambda m, x: m.cumprod(x, 1), [(3, 4)], "any"),
    "cumprod[one zero]": (lambda m, x: x.cumprod(0), [(5,)], "zero1"),
    "cumprod[two zeros]": (lambda m, x: x.cumprod(-1), [(2, 5)], "zero2"),
    "logcumsumexp": (lambda m, x: m.logcumsumexp(x, 0), [(4, 3)], "any"),
    "cummax": (lambda m, x: m.cummax(x, 1)[0], [(3, 4)], "distinct"),
    "cummin": (lambda m, x: x.cummin(0)[0], [(4, 3)], "distinct"),
    "topk": (lambda m, x: m.topk(x, 2)[0], [(3, 5)], "distinct"),
    "kthvalue": (lambda m, x: m.kthvalue(x, 2, 0)[0], [(4, 3)], "distinct"),
    "tril": (lambda m, x: m.tril(x, 1), [(2, 3, 4)], "any"),
    "triu": (lambda m, x: x.triu(), [(3, 4)], "any"),
    "diag[method]": (lambda m, x: x.diag(1), [(3, 4)], "any"),
    # -- scatters (index (3, 4) into (3, 5) along 1, with repeats)
    "scatter": (lambda m, x, s: m.scatter(x, 1, m.tensor([[0, 3], [4, 2], [1, 0]]), s[:, :2]),
                [(3, 5), (3, 4)], "any"),
    "scatter_add": (lambda m, x, s: x.scatter_add(1, _SCATTER_INDEX(m), s), [(3, 5), (3, 4)],
                    "any"),
    "scatter_reduce[sum]": (lambda m, x, s: m.scatter_reduce(x, 1, _SCATTER_INDEX(m), s, "sum",
                                                             include_self=False),
                            [(3, 5), (3, 4)], "any"),
    "scatter_reduce[mean]": (lambda m, x, s: m.scatter_reduce(x, 1, _SCATTER_INDEX(m), s,
                                                              "mean"), [(3, 5), (3, 4)], "any"),
    "scatter_reduce[prod]": (lambda m, x, s: m.scatter_reduce(x, 1, _SCATTER_INDEX(m), s,
                                                              "prod"), [(3, 5), (3, 4)], "any"),
    "scatter_reduce[amax]": (lambda m, x, s: m.scatter_reduce(x, 1, _SCATTER_INDEX(m), s,
                                                              "amax"), [(3, 5), (3, 4)],
                             "distinct"),
    "scatter_reduce[amin]": (lambda m, x, s: m.scatter_reduce(x, 1, _SCATTER_INDEX(m), s,
                                                              "amin"),
                             [(3, 5), (3, 4)], "distinct"),
    "index_add": (lambda m, x, s: m.index_add(x, 0, m.tensor([0, 2, 0]), s, alpha=1.5),
                  [(3, 4), (3, 4)], "any"),
    "index_put": (lambda m, x, v: m.index_put(x, (m.tensor([0, 2, 0]),), v, accumulate=True),
                  [(3, 4), (4,)], "any"),
    "index_put[assign]": (lambda m, x, v: x.index_put((m.tensor([2, 0]),), v), [(3, 4), (4,)],
                          "any"),
}


def _SCATTER_INDEX(m):
    return m.tensor([[0, 1, 0, 3], [2, 2, 0, 1], [3, 3, 3, 4]])

def _words(text: str) -> list[str]:
    return text.split()


# API.md's operations that have a gradient (by the name used in CASES)
DIFFERENTIABLE = _words("""
add sub mul div pow neg abs square sqrt rsqrt exp log log1p expm1 sin cos tan tanh sigmoid
relu maximum minimum clamp where sign floor ceil round reciprocal nan_to_num multiply
__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ __pow__ __rpow__
__matmul__ __neg__
matmul mm bmm dot mv outer t T transpose
sum mean prod max min amax amin var std norm logsumexp quantile nanquantile nansum nanmean
cumsum sort softmax log_softmax
view reshape flatten unflatten squeeze unsqueeze permute expand expand_as broadcast_to
contiguous cat stack split chunk flip clone double
getitem setitem gather
add_ sub_ mul_ div_ pow_ exp_ sqrt_ clamp_ copy_ zero_ fill_ inplace
""")

# API.md's operations without a gradient (integer, bool or index results)
NOT_DIFFERENTIABLE = set(_words("""
eq ne lt le gt ge logical_and logical_or logical_not isnan isfinite argmax argmin all any
broadcast_shapes
"""))


def _base(name: str) -> str:
    return name.split("[")[0]


def _arrays(shapes, domains, seed: int = 0):
    rng = np.random.default_rng(seed)
    if isinstance(domains, str):
        domains = [domains] * len(shapes)
    return [DOMAINS[d](s, rng) for s, d in zip(shapes, domains)]


@pytest.mark.parametrize("layout", ["contiguous", "view"])
@pytest.mark.parametrize("name", list(CASES))
def test_gradient(name, layout):
    fn, shapes, domains = CASES[name]
    check_grads(fn, _arrays(shapes, domains), layout=layout)


@pytest.mark.parametrize("name", list(CASES))
@settings(max_examples=3)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_gradient_random_values(name, seed):
    """The same checks on values hypothesis draws (each case's own domain)."""
    fn, shapes, domains = CASES[name]
    check_grads(fn, _arrays(shapes, domains, seed), seed=seed)


def _api_operation_names() -> set[str] | None:
    """Operation names in backticks in API.md's "Operations" section, if the file is here."""
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        path = root.parent / "shared" / "API.md"
        if path.exists():
            break
    else:
        return None
    text = path.read_text()
    section = text.split("## Operations", 1)[1].split("\n## ", 1)[0]
    names = set()
    for quoted in re.findall(r"`([^`]*)`", section):
        names.update(w for w in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", quoted) if len(w) > 1)
    # words in the section that are not operations (arguments, index kinds)
    return names - {"em", "X_", "dim", "keepdim", "idx", "value", "None"}


def coverage() -> tuple[int, int, list[str]]:
    """(differentiable ops with a case, differentiable ops, those missing)."""
    covered = {_base(n) for n in CASES}
    missing = [n for n in DIFFERENTIABLE if n not in covered]
    return len(DIFFERENTIABLE) - len(missing), len(DIFFERENTIABLE), missing


def test_coverage():
    done, total, missing = coverage()
    assert not missing, f"gradient checks cover {done}/{total} ops; missing: {missing}"
    names = _api_operation_names()
    if names is None:
        pytest.skip("API.md is not next to the repository")
    unknown = sorted(n for n in names if n not in DIFFERENTIABLE and n not in NOT_DIFFERENTIABLE)
    assert not unknown, f"API.md names ops this test does not classify: {unknown}"


# ---------------------------------------------------------------------------
# random shapes and values (hypothesis): broadcasting binary ops and reductions

shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast to a third: missing leading dims and size-1 dims."""
    full = draw(shapes)

    def sub():
        keep = draw(st.integers(0, len(full)))
        s = full[len(full) - keep:]
        return tuple(1 if draw(st.booleans()) else d for d in s)
    return sub(), sub(), full


BINARY = {
    "add": lambda m, x, y: x + y, "sub": lambda m, x, y: x - y,
    "mul": lambda m, x, y: x * y, "div": lambda m, x, y: x / (y * y + 1),
    "maximum": lambda m, x, y: m.maximum(x, y), "where": lambda m, x, y: m.where(x > y, x, y),
    "pow": lambda m, x, y: (x * x + 1) ** y,
}


@pytest.mark.parametrize("name", list(BINARY))
@settings(max_examples=15)
@given(pair=broadcast_pair(), seed=st.integers(0, 2 ** 16))
def test_binary_broadcast_random(name, pair, seed):
    a, c, _ = pair
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-2, 2, a), rng.uniform(-2, 2, c)
    check_grads(BINARY[name], [x, y], seed=seed)


REDUCE = {
    "sum": lambda m, x, d: x.sum(dim=d), "mean": lambda m, x, d: x.mean(dim=d),
    "var": lambda m, x, d: x.var(dim=d), "logsumexp": lambda m, x, d: m.logsumexp(x, dim=d),
    "amax": lambda m, x, d: x.amax(dim=d), "prod": lambda m, x, d: x.prod(dim=d[0]),
}


@st.composite
def shape_and_dims(draw):
    shape = tuple(draw(st.lists(st.integers(2, 3), min_size=1, max_size=3)))
    dims = draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1,
                         max_size=len(shape), unique_by=lambda d: d % len(shape)))
    return shape, tuple(dims)


@pytest.mark.parametrize("name", list(REDUCE))
@settings(max_examples=15)
@given(case=shape_and_dims(), seed=st.integers(0, 2 ** 16))
def test_reduction_random(name, case, seed):
    shape, dims = case
    x = _distinct(shape, np.random.default_rng(seed))
    fn = REDUCE[name]
    check_grads(lambda m, x: fn(m, x, dims), [x], seed=seed)
