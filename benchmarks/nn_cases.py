"""Functions of the em.nn benchmark cases (registered in cases.CASES): attention
composed from matmul, softmax and where against torch's fused kernel."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Inputs = dict[str, np.ndarray]


def attention_inputs(size: tuple[int, int, int, int], rng: np.random.Generator) -> Inputs:
    """q, k, v of shape (batch, heads, length, head_dim)."""
    return {name: rng.standard_normal(size, dtype=np.float32) for name in ("q", "k", "v")}


def np_causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    n = q.shape[-2]
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def tensor_causal_attention(lib: Any, q: Any, k: Any, v: Any) -> Any:
    return lib.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def attention_flops(size: tuple[int, int, int, int]) -> tuple[str, float]:
    b, h, n, d = size
    return "flops", 4.0 * b * h * n * n * d  # Q K^T and P V
