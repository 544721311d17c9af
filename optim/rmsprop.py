"""RMSprop, as `torch.optim.RMSprop`."""

from __future__ import annotations

from ._checks import check_eps, check_lr, check_nonneg
from .adam import lerp
from .optimizer import Optimizer, Scalars, _em, is_zero, near_one

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""Implements the RMSprop algorithm (Hinton's lecture; centered as in Graves, 2013).

    For each parameter :math:`\theta` with gradient :math:`g` (negated when
    ``maximize``):

    .. math::
        g &\leftarrow g + \lambda \theta \quad (\text{weight decay } \lambda \neq 0) \\
        v &\leftarrow \alpha v + (1 - \alpha) g^2, \quad
        \bar g \leftarrow \alpha \bar g + (1 - \alpha) g \ (\text{centered}) \\
        d &\leftarrow \sqrt{v - \bar g^2} + \epsilon \ (\text{centered}), \quad
            \sqrt{v} + \epsilon \ (\text{otherwise}) \\
        b &\leftarrow \mu b + g / d, \ \theta \leftarrow \theta - \gamma b \ (\mu > 0), \quad
            \theta \leftarrow \theta - \gamma g / d \ (\text{otherwise})

    Args:
        params (iterable): iterable of parameters or named parameters to optimize, or
            dicts defining parameter groups.
        lr (float, optional): learning rate (default: 1e-2).
        alpha (float, optional): smoothing constant (default: 0.99).
        eps (float, optional): term added to the denominator to improve numerical
            stability (default: 1e-8).
        weight_decay (float, optional): weight decay (L2 penalty) (default: 0).
        momentum (float, optional): momentum factor (default: 0).
        centered (bool, optional): if True, compute the centered RMSprop: the gradient
            is normalized by an estimation of its variance (default: False).
        maximize (bool, optional): maximize the objective instead of minimizing
            (default: False).
        capturable, foreach, differentiable: accepted for compatibility with PyTorch.

    The state of each parameter is PyTorch's: ``step``, ``square_avg``, and
    ``momentum_buffer`` (momentum > 0) and ``grad_avg`` (centered).

    >>> w = em.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = em.optim.RMSprop([w], lr=0.01, alpha=0.75)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    >>> w
    tensor([ 0.9800, -0.9800], requires_grad=True)
    """

    _scalar_slots = (("lr", None), ("alpha", None), ("eps", None), ("weight_decay", None),
                     ("momentum", None))
    _branch_facts = (("weight_decay", None, is_zero), ("momentum", None, is_zero),
                     ("alpha", None, near_one))

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 capturable: bool = False, foreach=None, maximize: bool = False,
                 differentiable: bool = False):
        check_lr(lr)
        check_eps(eps)
        check_nonneg(momentum, "momentum")
        check_nonneg(weight_decay, "weight_decay")
        check_nonneg(alpha, "alpha")
        if differentiable:
            raise NotImplementedError("ember.optim.RMSprop: differentiable=True is not "
                                      "supported")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    @staticmethod
    def _new_state(p, group: dict) -> dict:
        em = _em()
        state = {"step": em.tensor(0.0), "square_avg": em.zeros_like(p)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = em.zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = em.zeros_like(p)
        return state

    def _group_update(self, group: dict) -> list:
        lr, alpha, eps = group.scalar("lr"), group.scalar("alpha"), group.scalar("eps")
        small = near_one(group["alpha"])
        sc = Scalars()
        written = []
        for p in self._params_with_grad(group):
            d = p.dtype
            state = self._init_state(p, group)
            step_t, square_avg = state["step"], state["square_avg"]
            grad = -p.grad if group["maximize"] else p.grad
            step_t.add_(1)
            if group["weight_decay"] != 0:
                grad = grad + sc("wd", d, lambda: group.scalar("weight_decay")) * p
            square_avg.copy_(square_avg * sc("alpha", d, lambda: alpha)
                             + sc("1-alpha", d, lambda: 1 - alpha) * grad * grad)
            if group["centered"]:
                grad_avg = state["grad_avg"]
                grad_avg.copy_(lerp(grad_avg, grad, sc("1-alpha", d, lambda: 1 - alpha), small))
                written.append(grad_avg)
                avg = (square_avg - grad_avg * grad_avg).sqrt()
            else:
                avg = square_avg.sqrt()
            avg = avg + sc("eps", d, lambda: eps)
            if group["momentum"] > 0:
                buf = state["momentum_buffer"]
                buf.copy_(buf * sc("momentum", d, lambda: group.scalar("momentum")) + grad / avg)
                written.append(buf)
                p.copy_(p + sc("-lr", d, lambda: -lr) * buf)
            else:
                p.copy_(p + (grad / avg) * sc("-lr", d, lambda: -lr))
            written += [p, step_t, square_avg]
        return written
