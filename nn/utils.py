"""ember.nn.utils: gradient clipping and flat parameter vectors, as torch.nn.utils."""

from __future__ import annotations

import math

import ember as em

from ..tracer.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector",
           "vector_to_parameters"]


def _as_list(parameters) -> list:
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Scale the gradients in place so that their joint `norm_type` norm is at most
    `max_norm`; returns the norm before clipping (a 0-dim tensor).

    The scale is min(1, max_norm / (norm + 1e-6)), as torch's, applied as a tensor so
    a compiled step reads no value.

    >>> p = nn.Parameter(em.tensor([3.0, 4.0]))
    >>> p.grad = em.tensor([3.0, 4.0])
    >>> nn.utils.clip_grad_norm_([p], 1.0)
    tensor(5.)
    >>> p.grad
    tensor([0.6000, 0.8000])
    """
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return em.tensor(0.0)
    norm_type = float(norm_type)
    with em.no_grad():
        if math.isinf(norm_type):
            norms = [g.detach().abs().max() for g in grads]
            total = norms[0] if len(norms) == 1 else em.stack(norms).max()
        else:
            norms = [g.detach().norm(norm_type) for g in grads]
            total = em.stack(norms).norm(norm_type)
        if error_if_nonfinite and not bool(em.isfinite(total)):
            raise RuntimeError(
                f"The total norm of order {norm_type} for gradients from `parameters` is "
                "non-finite, so it cannot be clipped. To disable this error and scale the "
                "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
        scale = em.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return total


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient into [-clip_value, clip_value] in place."""
    with em.no_grad():
        for p in _as_list(parameters):
            if p.grad is not None:
                p.grad.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters) -> Tensor:
    """The parameters flattened and concatenated into one 1-D tensor."""
    return em.cat([p.reshape(-1) for p in _as_list(parameters)])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of the 1-D `vec` into the parameters (in place)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    offset = 0
    with em.no_grad():
        for p in _as_list(parameters):
            n = p.numel()
            p.copy_(vec[offset:offset + n].view(tuple(p.shape)))
            offset += n
