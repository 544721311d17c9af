"""`MultiheadAttention`, with PyTorch's parameters, masks and layouts."""

from __future__ import annotations

import math

import ember as em

from . import init
from .activation_functional import softmax
from .attention_functional import scaled_dot_product_attention
from .layer_functional import dropout, linear
from .linear import Linear
from .module import Module
from .parameter import Parameter

__all__ = ["MultiheadAttention"]


class NonDynamicallyQuantizableLinear(Linear):
    """A Linear under the name torch gives MultiheadAttention's output projection."""


def _float_mask(mask, dtype, name: str):
    """A mask as an additive float bias: a bool mask's True becomes -inf (not attended)."""
    if mask is None:
        return None
    if mask.dtype.is_bool:
        return em.where(mask, em.full((), -math.inf, dtype=dtype), 0.0)
    if not mask.dtype.is_floating_point:
        raise AssertionError(f"only bool and floating types of {name} are supported")
    return mask.to(dtype)


class MultiheadAttention(Module):
    """Attention over `num_heads` heads of size embed_dim / num_heads.

    Args:
        embed_dim: model width E. num_heads: number of heads (divides E).
        dropout: dropout probability on the attention weights (training only).
        bias: learn input/output projection biases. Default: True.
        batch_first: inputs and outputs are (N, L, E) instead of (L, N, E).

    forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False) returns
    (output, weights): weights (N, L, S) averaged over heads (or (N, H, L, S)), or None
    when `need_weights=False`. A bool mask's True means "do not attend", as torch's.

    >>> mha = nn.MultiheadAttention(8, 2, batch_first=True)
    >>> x = em.randn(3, 5, 8)
    >>> out, w = mha(x, x, x)
    >>> out.shape, w.shape
    (ember.Size([3, 5, 8]), ember.Size([3, 5, 5]))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if add_bias_kv or add_zero_attn or (kdim not in (None, embed_dim)) or (
                vdim not in (None, embed_dim)):
            raise NotImplementedError("MultiheadAttention: add_bias_kv, add_zero_attn and "
                                      "kdim/vdim other than embed_dim are not supported")
        self.embed_dim = embed_dim
        self.kdim = self.vdim = embed_dim
        self._qkv_same_embed_dim = True
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")
        kw = {"device": device, "dtype": dtype}
        self.in_proj_weight = Parameter(em.empty((3 * embed_dim, embed_dim), **kw))
        self.register_parameter("q_proj_weight", None)
        self.register_parameter("k_proj_weight", None)
        self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(em.empty(3 * embed_dim, **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **kw)
        self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    def _project(self, x, k: int):
        e = self.embed_dim
        w = self.in_proj_weight[k * e:(k + 1) * e]
        b = self.in_proj_bias[k * e:(k + 1) * e] if self.in_proj_bias is not None else None
        return linear(x, w, b)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use "
                               "the Transformer module method `generate_square_subsequent_mask`"
                               " to create this mask.")
        batched = query.ndim == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        out, weights = self._attend(query, key, value, key_padding_mask, need_weights,
                                    attn_mask, average_attn_weights)
        if not batched:
            out = out.squeeze(1)
            weights = weights.squeeze(0) if weights is not None else None
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _mask(self, attn_mask, key_padding_mask, bsz: int, tgt: int, src: int, dtype):
        """The additive mask, (N * H, L or 1, S), or None."""
        h = self.num_heads
        mask = _float_mask(attn_mask, dtype, "attn_mask")
        if mask is not None:
            if mask.ndim == 2:
                if tuple(mask.shape) != (tgt, src):
                    raise RuntimeError(f"The shape of the 2D attn_mask is "
                                       f"torch.Size({list(mask.shape)}), but should be "
                                       f"{(tgt, src)}.")
                mask = mask.unsqueeze(0)
            elif tuple(mask.shape) != (bsz * h, tgt, src):
                raise RuntimeError(f"The shape of the 3D attn_mask is "
                                   f"torch.Size({list(mask.shape)}), but should be "
                                   f"{(bsz * h, tgt, src)}.")
        kpm = _float_mask(key_padding_mask, dtype, "key_padding_mask")
        if kpm is not None:
            if tuple(kpm.shape) != (bsz, src):
                raise AssertionError(f"expecting key_padding_mask shape of {(bsz, src)}, but "
                                     f"got torch.Size({list(kpm.shape)})")
            kpm = kpm.view(bsz, 1, 1, src).expand(bsz, h, 1, src).reshape(bsz * h, 1, src)
            mask = kpm if mask is None else mask + kpm
        return mask

    def _attend(self, query, key, value, key_padding_mask, need_weights, attn_mask,
                average_attn_weights):
        tgt, bsz, e = query.shape
        src = key.shape[0]
        if e != self.embed_dim:
            raise AssertionError(f"was expecting embedding dimension of {self.embed_dim}, "
                                 f"but got {e}")
        h, hd = self.num_heads, self.head_dim
        q = self._project(query, 0).reshape(tgt, bsz * h, hd).transpose(0, 1)
        k = self._project(key, 1).reshape(src, bsz * h, hd).transpose(0, 1)
        v = self._project(value, 2).reshape(src, bsz * h, hd).transpose(0, 1)
        mask = self._mask(attn_mask, key_padding_mask, bsz, tgt, src, q.dtype)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q * math.sqrt(1.0 / hd)) @ k.transpose(-2, -1)
            if mask is not None:
                scores = scores + mask
            w = softmax(scores, dim=-1)
            if p > 0.0:
                w = dropout(w, p)
            out = w @ v
            weights = w.view(bsz, h, tgt, src)
            if average_attn_weights:
                weights = weights.mean(dim=1)
        else:
            m = mask.view(bsz, h, -1, src) if mask is not None else None
            out = scaled_dot_product_attention(q.view(bsz, h, tgt, hd), k.view(bsz, h, src, hd),
                                               v.view(bsz, h, src, hd), m, p)
            out = out.permute(2, 0, 1, 3).reshape(tgt * bsz, e)
            out = self.out_proj(out).view(tgt, bsz, e)
            return out, None
        out = out.transpose(0, 1).reshape(tgt * bsz, e)
        return self.out_proj(out).view(tgt, bsz, e), weights
