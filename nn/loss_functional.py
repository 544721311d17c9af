"""Loss functions of `ember.nn.functional`, with PyTorch's arguments and reductions.

Every loss is a composition of ember's operations; its gradient is autograd's. Target
values are never read on the host (an out-of-range class index is not diagnosed, as it
would force a value inside `em.compile`).
"""

from __future__ import annotations

import warnings

import ember as em

from ..tracer.tensor import Tensor
from .activation_functional import logsigmoid

__all__ = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "nll_loss", "cross_entropy",
           "binary_cross_entropy", "binary_cross_entropy_with_logits"]

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _pointwise_args(name: str, input, target) -> None:
    for arg, what in ((input, "input"), (target, "target")):
        if not isinstance(arg, Tensor):
            raise TypeError(f"{name}(): argument '{what}' must be Tensor, not "
                            f"{type(arg).__name__}")
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(
            f"Using a target size ({_size(target.shape)}) that is different to the input "
            f"size ({_size(input.shape)}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.", stacklevel=3)


def _size(shape) -> str:
    return f"torch.Size({list(shape)})"


def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
             reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """The (mean, by default) squared difference of input and target.

    >>> F.mse_loss(em.tensor([1.0, 2.0]), em.tensor([0.0, 0.0]))
    tensor(2.5000)
    """
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    _pointwise_args("mse_loss", input, target)
    loss = (input - target) ** 2
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
            reduction: str = "mean") -> Tensor:
    """The (mean, by default) absolute difference of input and target."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    _pointwise_args("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean",
               delta: float = 1.0, weight: Tensor | None = None) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - delta / 2), for d = input - target."""
    _check_reduction(reduction)
    _pointwise_args("huber_loss", input, target)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    d = input - target
    a = d.abs()
    loss = em.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - beta / 2."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    _pointwise_args("smooth_l1_loss", input, target)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    d = input - target
    a = d.abs()
    return _reduce(em.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta), reduction)


def _legacy(size_average, reduce, reduction: str) -> str:
    """PyTorch's deprecated size_average/reduce arguments, as a reduction."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _class_target(name: str, input: Tensor, target: Tensor) -> None:
    if input.ndim == 0:
        raise ValueError(f"Expected input to have at least 1 dimension, got 0 ({name})")
    if target.dtype.is_floating_point or target.dtype.is_bool:
        raise RuntimeError(f"expected scalar type Long but found {target.dtype}")
    if input.ndim == 1:
        if target.ndim != 0:
            raise ValueError(f"Expected target of 0 dimensions for 1-D input ({name}), got "
                             f"{target.ndim}")
        return
    if target.ndim == 0 or input.shape[0] != target.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target "
                         f"batch_size ({target.shape[0] if target.ndim else 0}).")
    expect = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expect:
        raise RuntimeError(f"Expected target size {list(expect)}, got {list(target.shape)}")


def _picked(input: Tensor, target: Tensor, ignore_index: int):
    """(input's entries at the target classes along dim 1, the not-ignored mask, the
    safe target: ignored positions read class 0)."""
    keep = target != ignore_index
    safe = em.where(keep, target, 0)
    picked = input.gather(1, safe.unsqueeze(1)).squeeze(1)
    return picked, keep, safe


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """The negative log likelihood of the target classes: -input[n, target[n]].

    `input` holds log-probabilities, shape (C,), (N, C) or (N, C, d1, ...); `target`
    class indices, shape (), (N,) or (N, d1, ...). `weight` (C,) rescales each class;
    entries whose target is `ignore_index` contribute nothing, and 'mean' divides by
    the sum of the weights of the counted entries, as torch.

    >>> F.nll_loss(em.tensor([[-1.0, -2.0]]), em.tensor([1]))
    tensor(2.)
    """
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    _class_target("nll_loss", input, target)
    if input.ndim == 1:
        out = nll_loss(input.unsqueeze(0), target.unsqueeze(0), weight, None, ignore_index,
                       None, reduction)
        return out.squeeze(0) if reduction == "none" else out
    n_classes = input.shape[1]
    if weight is not None and tuple(weight.shape) != (n_classes,):
        raise RuntimeError(f"weight tensor should be defined either for all {n_classes} "
                           f"classes or no classes but got weight tensor of shape: "
                           f"{list(weight.shape)}")
    picked, keep, safe = _picked(input, target, ignore_index)
    w = keep.to(input.dtype)
    if weight is not None:
        w = w * weight.to(input.dtype)[safe]
    loss = -picked * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w.sum()


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy between the logits `input` and `target`.

    `input`: unnormalised scores, shape (C,), (N, C) or (N, C, d1, ...). `target`:
    class indices (an integer tensor of shape (), (N,) or (N, d1, ...)), or class
    probabilities (a float tensor of input's shape). `weight`, `ignore_index`,
    `label_smoothing` and `reduction` as torch.nn.functional.cross_entropy.

    >>> F.cross_entropy(em.tensor([[0.0, 0.0]]), em.tensor([1]))
    tensor(0.6931)
    """
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: "
                           f"{label_smoothing}")
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError("cross_entropy(): input and target must be Tensors")
    class_dim = 0 if input.ndim == 1 else 1
    logp = em.log_softmax(input, class_dim)
    if target.dtype.is_floating_point:
        return _cross_entropy_probs(logp, target, weight, reduction, label_smoothing,
                                    class_dim)
    nll = nll_loss(logp, target, weight, None, ignore_index, None, reduction)
    if label_smoothing == 0.0:
        return nll
    smooth = _smooth_term(logp, target, weight, ignore_index, reduction, class_dim)
    n_classes = input.shape[class_dim]
    return (1 - label_smoothing) * nll + smooth * (label_smoothing / n_classes)


def _class_weight_view(weight: Tensor, logp: Tensor, class_dim: int) -> Tensor:
    shape = [1] * logp.ndim
    shape[class_dim] = weight.shape[0]
    return weight.to(logp.dtype).view(shape)


def _smooth_term(logp, target, weight, ignore_index, reduction, class_dim) -> Tensor:
    """The label-smoothing part of cross entropy by class indices (torch's formula)."""
    if weight is not None:
        smooth = -(logp * _class_weight_view(weight, logp, class_dim)).sum(class_dim)
    else:
        smooth = -logp.sum(class_dim)
    keep = target != ignore_index
    smooth = em.where(keep, smooth, 0.0)
    if reduction == "none":
        return smooth
    if reduction == "sum":
        return smooth.sum()
    if weight is not None:
        safe = em.where(keep, target, 0)
        return smooth.sum() / em.where(keep, weight.to(logp.dtype)[safe], 0.0).sum()
    return smooth.sum() / keep.sum()


def _cross_entropy_probs(logp, target, weight, reduction, label_smoothing, class_dim):
    if tuple(target.shape) != tuple(logp.shape):
        raise RuntimeError(f"Expected target size {list(logp.shape)}, got "
                           f"{list(target.shape)}")
    n_classes = logp.shape[class_dim]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / n_classes
    if weight is not None:
        logp = logp * _class_weight_view(weight, logp, class_dim)
    prod = logp * target
    if reduction == "none":
        return -prod.sum(class_dim)
    if reduction == "sum":
        return -prod.sum()
    return -prod.sum() / (logp.numel() // n_classes)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """-(t log(x) + (1 - t) log(1 - x)), each log clamped at -100 as torch does.

    >>> F.binary_cross_entropy(em.tensor([0.5]), em.tensor([1.0]))
    tensor(0.6931)
    """
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({_size(target.shape)}) that is different to "
                         f"the input size ({_size(input.shape)}) is deprecated. Please ensure "
                         "they have the same size.")
    log_x = em.clamp(em.log(input), min=-100.0)
    log_1mx = em.clamp(em.log(1.0 - input), min=-100.0)
    loss = -(target * log_x + (1.0 - target) * log_1mx)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     weight: Tensor | None = None, size_average=None,
                                     reduce=None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross entropy of sigmoid(input), computed stably from the logits.

    `pos_weight` weighs the positive term (broadcast along the last dim, as torch).
    """
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({_size(target.shape)}) must be the same as input "
                         f"size ({_size(input.shape)})")
    log_sig = logsigmoid(input)
    if pos_weight is not None:
        log_weight = (pos_weight - 1) * target + 1
        loss = (1 - target) * input - log_weight * log_sig
    else:
        loss = (1 - target) * input - log_sig
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)
