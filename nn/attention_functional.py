"""Attention of `ember.nn.functional`: scaled dot-product attention, composed from
matmul, softmax and where, so autograd and fusion see through it."""

from __future__ import annotations

import math

import ember as em

from ..tracer.tensor import Tensor
from .layer_functional import dropout

__all__ = ["scaled_dot_product_attention"]


def causal_mask(n_queries: int, n_keys: int, device=None) -> Tensor:
    """Bool (L, S): True where query i may attend to key j (j <= i), as torch's tril."""
    rows = em.arange(n_queries, device=device).unsqueeze(1)
    cols = em.arange(n_keys, device=device).unsqueeze(0)
    return rows >= cols


def attention_bias(attn_mask: Tensor | None, is_causal: bool, n_queries: int, n_keys: int,
                   dtype, device) -> Tensor | None:
    """The additive bias of the scores: -inf where a bool mask is False or causality
    forbids, a float mask as is; None when there is neither."""
    bias = None
    if is_causal:
        bias = em.where(causal_mask(n_queries, n_keys, device), 0.0,
                        em.full((), -math.inf, dtype=dtype))
    if attn_mask is not None:
        if attn_mask.dtype.is_bool:
            m = em.where(attn_mask, 0.0, em.full((), -math.inf, dtype=dtype))
        else:
            m = attn_mask.to(dtype)
        bias = m if bias is None else bias + m
    return bias


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Tensor | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(Q K^T * scale + bias) V, over the last two dims (batch dims broadcast).

    Args:
        query: (..., L, E); key: (..., S, E); value: (..., S, Ev).
        attn_mask: bool (True = attend) or float (added to the scores), broadcastable
            to (..., L, S).
        dropout_p: dropout probability on the attention weights (always applied, as torch).
        is_causal: mask out keys after each query (top-left aligned, as torch).
        scale: the factor of the scores; 1 / sqrt(E) by default.
        enable_gqa: repeat key/value heads (dim -3) to the number of query heads.

    >>> q = em.ones(1, 2, 4)
    >>> F.scaled_dot_product_attention(q, q, q).shape
    ember.Size([1, 2, 4])
    """
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be "
                           "set when is_causal=True")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"scaled_dot_product_attention: query and key must have the same "
                           f"embedding size, got {query.shape[-1]} and {key.shape[-1]}")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        reps = query.shape[-3] // key.shape[-3]
        key = _repeat_heads(key, reps)
        value = _repeat_heads(value, reps)
    n_q, n_k = query.shape[-2], key.shape[-2]
    factor = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * factor
    bias = attention_bias(attn_mask, is_causal, n_q, n_k, scores.dtype, query.device)
    if bias is not None:
        scores = scores + bias
    weights = em.softmax(scores, -1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return weights @ value


def _repeat_heads(x: Tensor, reps: int) -> Tensor:
    """Each head of x (dim -3) repeated `reps` times in place (torch's repeat_interleave)."""
    shape = tuple(x.shape)
    expanded = x.unsqueeze(-3).expand(shape[:-3] + (shape[-3], reps) + shape[-2:])
    return expanded.reshape(shape[:-3] + (shape[-3] * reps,) + shape[-2:])
