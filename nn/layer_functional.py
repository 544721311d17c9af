"""Layer functions of `ember.nn.functional`: linear, dropout, normalisation, embedding,
one_hot, normalize, composed from ember's operations."""

from __future__ import annotations

import math

import ember as em

from ..tracer.tensor import Tensor

__all__ = ["linear", "bilinear", "dropout", "layer_norm", "batch_norm", "embedding",
           "one_hot", "normalize"]


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias: `input` (*, in_features), `weight` (out_features,
    in_features), `bias` (out_features,).

    >>> F.linear(em.ones(2, 3), em.ones(4, 3)).shape
    ember.Size([2, 4])
    """
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError("linear(): input and weight must be Tensors")
    if weight.ndim not in (1, 2):
        raise RuntimeError(f"linear(): weight must be 1-D or 2-D, got {weight.ndim}-D")
    in_features = weight.shape[-1]
    if input.ndim == 0 or input.shape[-1] != in_features:
        rows = math.prod(input.shape[:-1]) if input.ndim else 1
        cols = input.shape[-1] if input.ndim else 1
        w = f"{weight.shape[1]}x{weight.shape[0]}" if weight.ndim == 2 else f"{in_features}"
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{cols} and "
                           f"{w})")
    out = input @ weight.t() if weight.ndim == 2 else input @ weight
    if bias is not None:
        out = out + bias
    return out


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None):
    """y[..., k] = input1 @ weight[k] @ input2 + bias[k]."""
    t = (input1.unsqueeze(-2).unsqueeze(-2) @ weight).squeeze(-2)  # (*, out, in2)
    out = (t * input2.unsqueeze(-2)).sum(-1)
    return out + bias if bias is not None else out


def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p), when
    `training`; the input itself otherwise. The mask comes from ember's generator.
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        out = input * 0.0
    else:
        keep = em.rand_like(input, dtype=input.dtype) < (1.0 - p)
        out = input * (keep.to(input.dtype) * (1.0 / (1.0 - p)))
    return input.copy_(out) if inplace else out


def _check_normalized_shape(input: Tensor, normalized_shape) -> tuple[int, ...]:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
        normalized_shape)
    n = len(shape)
    if n == 0 or input.ndim < n or tuple(input.shape[input.ndim - n:]) != shape:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size"
                           f"{_torch_size(input.shape)}")
    return shape


def _torch_size(shape) -> str:
    return f"[{', '.join(map(str, shape))}]"


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last len(normalized_shape) dims to mean 0 and variance 1
    (biased), then scale by `weight` and shift by `bias`.

    >>> F.layer_norm(em.tensor([[1.0, 3.0]]), (2,))
    tensor([[-1.0000,  1.0000]])
    """
    shape = _check_normalized_shape(input, normalized_shape)
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    mean = input.mean(dims, keepdim=True)
    centred = input - mean
    var = (centred * centred).mean(dims, keepdim=True)
    out = centred * em.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) over the batch and spatial dims.

    When `training`, the batch's statistics are used and the running ones (if given)
    updated in place: running = (1 - momentum) running + momentum batch, the
    variance unbiased. Otherwise the running statistics are used.
    """
    if input.ndim < 2:
        raise ValueError(f"expected 2D or more input (got {input.ndim}D input)")
    c = input.shape[1]
    dims = (0,) + tuple(range(2, input.ndim))
    shape = [1, c] + [1] * (input.ndim - 2)
    count = input.numel() // c if c else 0
    if training:
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got "
                             f"input size torch.Size({list(input.shape)})")
        mean = input.mean(dims)
        centred = input - mean.view(shape)
        var = (centred * centred).mean(dims)
        if running_mean is not None and running_var is not None:
            _update_running(running_mean, running_var, mean, var, count, momentum)
        out = centred * em.rsqrt(var.view(shape) + eps)
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("running_mean and running_var must be defined in evaluation "
                               "mode")
        out = (input - running_mean.view(shape)) * em.rsqrt(running_var.view(shape) + eps)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out


def _update_running(running_mean, running_var, mean, var, count, momentum) -> None:
    with em.no_grad():
        unbiased = var.detach() * (count / (count - 1))
        running_mean.mul_(1 - momentum).add_(mean.detach().to(running_mean.dtype) * momentum)
        running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype) * momentum)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """The rows of `weight` at the indices `input`: shape input.shape + (dim,).

    The gradient of row `padding_idx` stays zero. With `max_norm`, the rows looked up
    are first renormalised in place to norm at most max_norm, as torch.

    >>> F.embedding(em.tensor([1, 0]), em.tensor([[0.0, 1.0], [2.0, 3.0]]))
    tensor([[2., 3.],
            [0., 1.]])
    """
    if input.dtype.is_floating_point or input.dtype.is_bool:
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {input.dtype} instead")
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding(): scale_grad_by_freq and sparse are not "
                                  "supported by ember")
    n = weight.shape[0]
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= n
    flat = input.reshape(-1)
    if max_norm is not None:
        _renorm_rows(weight, flat, max_norm, norm_type)
    rows = weight.index_select(0, flat)
    if padding_idx is not None:
        # NOTE: the padding row's value is read as is, but its gradient is cut
        pad = (flat == padding_idx).unsqueeze(-1)
        rows = em.where(pad, rows.detach(), rows)
    return rows.view(tuple(input.shape) + (weight.shape[1],))


def _renorm_rows(weight: Tensor, flat: Tensor, max_norm: float, norm_type: float) -> None:
    with em.no_grad():
        rows = weight.detach().index_select(0, flat)
        norms = rows.norm(norm_type, dim=1, keepdim=True)
        scale = em.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
        weight[flat] = rows * scale


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 tensor of shape tensor.shape + (num_classes,), 1 at each index.

    `num_classes=-1` takes the largest index + 1 (reads the values).

    >>> F.one_hot(em.tensor([0, 2]), 3)
    tensor([[1, 0, 0],
            [0, 0, 1]])
    """
    if tensor.dtype is not em.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        num_classes = int(tensor.max().item()) + 1 if tensor.numel() else 0
    elif num_classes < -1:
        raise RuntimeError("num_classes should be positive")
    classes = em.arange(num_classes, device=tensor.device)
    return (tensor.unsqueeze(-1) == classes).to(em.int64)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12,
              out: Tensor | None = None) -> Tensor:
    """input / max(||input||_p, eps) along `dim`.

    >>> F.normalize(em.tensor([[3.0, 4.0]]))
    tensor([[0.6000, 0.8000]])
    """
    denom = em.clamp(input.norm(p, dim, keepdim=True), min=eps)
    result = input / denom
    if out is not None:
        return out.copy_(result)
    return result
