"""Activation functions of `ember.nn.functional`, composed from ember's elementwise ops.

Each is written so that its autograd gradient is PyTorch's, including at the kinks
(relu and leaky_relu at 0, hardsigmoid at +-3) and where an unused branch of a
`where` would overflow (softplus, elu).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

import ember as em

from ..tracer.tensor import Tensor

__all__ = ["relu", "relu6", "gelu", "silu", "leaky_relu", "elu", "softplus", "hardsigmoid",
           "softsign", "sigmoid", "tanh", "softmax", "log_softmax", "hardtanh", "mish",
           "logsigmoid"]


def _check(input, name: str) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")


def _finish(input: Tensor, out: Tensor, inplace: bool) -> Tensor:
    """out, or out written into input when `inplace` (returns input, as torch)."""
    if not inplace:
        return out
    return input.copy_(out)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(input, 0) elementwise; the gradient at 0 is 0, as in PyTorch.

    >>> F.relu(em.tensor([-1.0, 0.0, 2.0]))
    tensor([0., 0., 2.])
    """
    _check(input, "relu")
    return input.relu_() if inplace else em.relu(input)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(input, 0), 6) elementwise."""
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """input clamped into [min_val, max_val]; the gradient is 0 at and beyond the bounds."""
    _check(input, "hardtanh")
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    inside = (input > min_val) & (input < max_val)
    out = em.where(inside, input, em.clamp(input, min_val, max_val).detach())
    return _finish(input, out, inplace)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x), the Gaussian error linear unit; `approximate='tanh'` uses
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    >>> F.gelu(em.tensor([0.0, 1.0]))
    tensor([0.0000, 0.8413])
    """
    _check(input, "gelu")
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (input + 0.044715 * input * input * input)
        return 0.5 * input * (1.0 + em.tanh(inner))
    if approximate != "none":
        raise RuntimeError(f"approximate argument must be either none or tanh, got "
                           f"{approximate!r}")
    return 0.5 * input * (1.0 + em.erf(input * (1.0 / math.sqrt(2.0))))


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    _check(input, "silu")
    return _finish(input, input * em.sigmoid(input), inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    _check(input, "mish")
    return _finish(input, input * em.tanh(softplus(input)), inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope * x (gradient negative_slope at 0, as torch)."""
    _check(input, "leaky_relu")
    return _finish(input, em.where(input > 0, input, input * negative_slope), inplace)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1)."""
    _check(input, "elu")
    # NOTE: expm1 of the clamped value, so the unused branch never overflows to inf,
    # whose gradient (inf * 0) would be NaN
    neg = alpha * em.expm1(em.clamp(input, max=0.0))
    return _finish(input, em.where(input > 0, input, neg), inplace)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    _check(input, "softplus")
    scaled = input * beta
    # NOTE: exp of the clamped value: the unused branch must not overflow (see elu)
    soft = em.log1p(em.exp(em.clamp(scaled, max=threshold))) / beta
    return em.where(scaled > threshold, input, soft)


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) computed stably: -log1p(exp(-x)) for x >= 0, x - log1p(exp(x))
    below (the gradient at 0 is torch's 1/2)."""
    _check(input, "logsigmoid")
    # NOTE: each branch's exp reads a clamped value, so the unused one never overflows
    pos = -em.log1p(em.exp(-em.clamp(input, min=0.0)))
    neg = input - em.log1p(em.exp(em.clamp(input, max=0.0)))
    return em.where(input >= 0, pos, neg)


_ONE_SIXTH_F32 = float(np.float32(1.0 / 6.0))


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """0 for x <= -3, 1 for x >= 3, x / 6 + 1/2 between (gradient 1/6 strictly inside)."""
    _check(input, "hardsigmoid")
    # NOTE: torch computes (x + 3) / 6 forward, and its gradient with 1/6 rounded to
    # float32 even for float64; the carrier g gives exactly that gradient, adding 0
    g = input * _ONE_SIXTH_F32
    inner = ((input + 3.0) / 6.0).detach() + (g - g.detach())
    out = em.where(input <= -3.0, 0.0, em.where(input >= 3.0, 1.0, inner))
    return _finish(input, out, inplace)


def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    _check(input, "softsign")
    return input / (1.0 + input.abs())


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x))."""
    return em.sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    """The hyperbolic tangent."""
    return em.tanh(input)


def _softmax_dim(name: str, ndim: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the "
                  "call to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along `dim` (computed stably).

    >>> F.softmax(em.tensor([0.0, 0.0]), dim=0)
    tensor([0.5000, 0.5000])
    """
    _check(input, "softmax")
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim)
    return em.softmax(input, dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
                dtype=None) -> Tensor:
    """log(softmax(x)) along `dim`, computed stably."""
    _check(input, "log_softmax")
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim)
    return em.log_softmax(input, dim, dtype=dtype)
