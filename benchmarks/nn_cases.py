"""The code of the convolution and attention training-step cases (registry in `cases`).

Both are SGD steps over PyTorch-style code that torch and ember run as written
(`F.conv2d`, `F.max_pool2d`, `einsum`, `softmax`); the NumPy versions spell out the
gradients by hand (im2col through `sliding_window_view`, col2im by slice sums).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .loops import sgd

CONV_LR = 0.01
ATTN_LR = 0.1


def _functional(lib: Any) -> Any:
    return importlib.import_module(lib.__name__ + ".nn.functional")


# ---- a small CNN block: conv 3x3 -> relu -> max_pool 2 -> conv 3x3, mean of squares ----

def conv_inputs(size: tuple[int, int, int, int, int],
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    batch, c_in, hw, c1, c2 = size

    def weight(o: int, c: int) -> np.ndarray:
        return (rng.standard_normal((o, c, 3, 3)) / np.sqrt(c * 9)).astype(np.float32)

    return {"x": rng.standard_normal((batch, c_in, hw, hw), dtype=np.float32),
            "w1": weight(c1, c_in), "b1": np.zeros(c1, dtype=np.float32),
            "w2": weight(c2, c1), "b2": np.zeros(c2, dtype=np.float32)}


def conv_step(lib: Any, x: Any, w1: Any, b1: Any, w2: Any, b2: Any) -> None:
    F = _functional(lib)
    h = F.max_pool2d(F.conv2d(x, w1, b1, padding=1).relu(), 2)
    loss = F.conv2d(h, w2, b2, padding=1).square().mean()
    loss.backward()
    sgd(lib, (w1, b1, w2, b2), CONV_LR)


def _np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 convolution with padding 1: the output and the im2col windows."""
    cols = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), (2, 3))
    out = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    return out + b[:, None, None], cols


def _np_conv_grads(d_out: np.ndarray, cols: np.ndarray, w: np.ndarray, want_input: bool):
    d_w = np.tensordot(d_out, cols, axes=([0, 2, 3], [0, 2, 3]))
    d_b = d_out.sum(axis=(0, 2, 3))
    if not want_input:
        return d_w, d_b, None
    d_cols = np.tensordot(d_out, w, axes=([1], [0]))  # (N, H, W, C, 3, 3)
    n, h, wd = d_out.shape[0], d_out.shape[2], d_out.shape[3]
    d_pad = np.zeros((n, w.shape[1], h + 2, wd + 2), dtype=d_out.dtype)
    for i in range(3):
        for j in range(3):
            d_pad[:, :, i:i + h, j:j + wd] += d_cols[..., i, j].transpose(0, 3, 1, 2)
    return d_w, d_b, d_pad[:, :, 1:-1, 1:-1]


def np_conv_step(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray,
                 b2: np.ndarray) -> None:
    h1, cols1 = _np_conv(x, w1, b1)
    r1 = np.maximum(h1, 0)
    n, c, hh, ww = r1.shape
    win = r1.reshape(n, c, hh // 2, 2, ww // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    win = win.reshape(n, c, hh // 2, ww // 2, 4)
    first = win.argmax(axis=-1)  # the first maximum takes the gradient, as torch's
    pooled = np.take_along_axis(win, first[..., None], -1)[..., 0]
    h2, cols2 = _np_conv(pooled, w2, b2)
    d_h2 = 2 * h2 / h2.size
    d_w2, d_b2, d_pooled = _np_conv_grads(d_h2, cols2, w2, True)
    d_win = (np.arange(4) == first[..., None]) * d_pooled[..., None]
    d_r1 = d_win.reshape(n, c, hh // 2, ww // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    d_h1 = d_r1.reshape(n, c, hh, ww) * (h1 > 0)
    d_w1, d_b1, _ = _np_conv_grads(d_h1, cols1, w1, False)
    for p, g in ((w1, d_w1), (b1, d_b1), (w2, d_w2), (b2, d_b2)):
        p -= CONV_LR * g.astype(p.dtype)


def conv_flops(size: tuple[int, int, int, int, int]) -> tuple[str, float]:
    batch, c_in, hw, c1, c2 = size
    forward = 2 * batch * 9 * (c_in * c1 * hw * hw + c1 * c2 * (hw // 2) ** 2)
    return "flops", 3.0 * forward  # forward, weight gradients and input gradients


# ---- scaled dot-product attention written with einsum and softmax --------------------

def attention_inputs(size: tuple[int, int, int, int],
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {k: rng.standard_normal(size, dtype=np.float32) for k in ("q", "k", "v")}


def attention_step(lib: Any, q: Any, k: Any, v: Any) -> None:
    scale = q.shape[-1] ** -0.5
    weights = (lib.einsum("bhqd,bhkd->bhqk", q, k) * scale).softmax(dim=-1)
    out = lib.einsum("bhqk,bhkd->bhqd", weights, v)
    out.square().mean().backward()
    sgd(lib, (q, k, v), ATTN_LR)


def np_attention_step(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    scale = q.shape[-1] ** -0.5
    scores = q @ k.swapaxes(-1, -2) * scale
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    out = p @ v
    d_out = 2 * out / out.size
    d_v = p.swapaxes(-1, -2) @ d_out
    d_p = d_out @ v.swapaxes(-1, -2)
    d_s = p * (d_p - (d_p * p).sum(axis=-1, keepdims=True)) * scale
    d_q, d_k = d_s @ k, d_s.swapaxes(-1, -2) @ q
    for t, g in ((q, d_q), (k, d_k), (v, d_v)):
        t -= ATTN_LR * g


def attention_flops(size: tuple[int, int, int, int]) -> tuple[str, float]:
    b, h, s, d = size
    return "flops", 3.0 * 2 * (2 * b * h * s * s * d)  # two products, forward and back
