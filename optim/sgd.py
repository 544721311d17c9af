"""Stochastic gradient descent (optionally with momentum), as `torch.optim.SGD`."""

from __future__ import annotations

from ._checks import check_lr, check_nonneg
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Implements stochastic gradient descent (optionally with momentum).

    For each parameter :math:`\theta` with gradient :math:`g` (negated when
    ``maximize``), at step :math:`t`:

    .. math::
        g &\leftarrow g + \lambda \theta \quad (\text{weight decay } \lambda \neq 0) \\
        b_t &\leftarrow g \ (t = 1), \quad \mu b_{t-1} + (1 - \tau) g \ (t > 1)
            \quad (\text{momentum } \mu \neq 0) \\
        g &\leftarrow g + \mu b_t \ (\text{nesterov}), \quad b_t \ (\text{otherwise}) \\
        \theta &\leftarrow \theta - \gamma g

    Args:
        params (iterable): iterable of parameters or named parameters to optimize, or
            dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-3).
        momentum (float, optional): momentum factor :math:`\mu` (default: 0).
        dampening (float, optional): dampening for momentum :math:`\tau` (default: 0).
        weight_decay (float, optional): weight decay (L2 penalty) :math:`\lambda`
            (default: 0).
        nesterov (bool, optional): enables Nesterov momentum (default: False).
        maximize (bool, optional): maximize the objective instead of minimizing
            (default: False).
        foreach, differentiable, fused: accepted for compatibility with PyTorch; every
            ember step is one fused program per group, and ``differentiable=True`` is
            not supported.

    Each group's whole update is one program; its float options are inputs of that
    program, so changing them (a scheduler) never recompiles.

    >>> w = em.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = em.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    >>> w
    tensor([0.8000, 1.6000], requires_grad=True)
    """

    _scalar_slots = (("lr", None), ("momentum", None), ("dampening", None),
                     ("weight_decay", None))

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach=None, differentiable: bool = False, fused=None):
        check_lr(lr)
        check_nonneg(momentum, "momentum")
        check_nonneg(weight_decay, "weight_decay")
        if differentiable:
            raise NotImplementedError("ember.optim.SGD: differentiable=True is not supported")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)

    def _group_update(self, group: dict) -> list:
        lr = group.scalar("lr")
        written = []
        for p in self._params_with_grad(group):
            d = p.dtype
            grad = -p.grad if group["maximize"] else p.grad
            if group["weight_decay"] != 0:
                grad = grad + group.scalar("weight_decay").to(d) * p
            if group["momentum"] != 0:
                momentum = group.scalar("momentum")
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = grad.detach().clone()
                else:
                    buf.copy_(buf * momentum.to(d)
                              + (1 - group.scalar("dampening")).to(d) * grad)
                written.append(buf)
                grad = grad + momentum.to(d) * buf if group["nesterov"] else buf
            p.copy_(p + (-lr).to(d) * grad)
            written.append(p)
        return written
