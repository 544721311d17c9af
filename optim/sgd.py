"""Stochastic gradient descent (optionally with momentum), as `torch.optim.SGD`."""

from __future__ import annotations

from ._checks import check_lr, check_nonneg
from .optimizer import Optimizer, Scalars, _em, is_zero, make_state, tracing

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
    _branch_facts = (("weight_decay", None, is_zero), ("momentum", None, is_zero))

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

    @property
    def _started(self) -> dict:
        """param -> a bool tensor: whether its momentum buffer holds a value (only for
        buffers made by a step traced by `em.compile`)."""
        started = self.__dict__.get("_started_flags")
        if started is None:
            started = self.__dict__["_started_flags"] = {}
        return started

    def _traced_first_buffer(self, p, state: dict):
        """The momentum buffer of a first step traced by `em.compile`: zeros made outside
        the trace (an input of the program), with a flag saying it holds no value yet, so
        the traced program computes PyTorch's first step (the gradient) and later ones."""
        em = _em()
        made = make_state(lambda: {"momentum_buffer": em.zeros_like(p),
                                   "started": em.tensor(False)})
        state["momentum_buffer"] = made["momentum_buffer"]
        self._started[p] = made["started"]
        return made["momentum_buffer"]

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._started.clear()

    def _group_update(self, group: dict) -> list:
        lr = group.scalar("lr")
        sc = Scalars()
        written = []
        for p in self._params_with_grad(group):
            d = p.dtype
            grad = -p.grad if group["maximize"] else p.grad
            if group["weight_decay"] != 0:
                grad = grad + sc("wd", d, lambda: group.scalar("weight_decay")) * p
            if group["momentum"] != 0:
                momentum = sc("momentum", d, lambda: group.scalar("momentum"))
                buf = self._momentum_buffer(p, grad, momentum, group, sc, written)
                grad = grad + momentum * buf if group["nesterov"] else buf
            p.copy_(p + sc("-lr", d, lambda: -lr) * grad)
            written.append(p)
        return written

    def _momentum_buffer(self, p, grad, momentum, group: dict, sc: Scalars, written: list):
        """p's momentum buffer after this step: the gradient on the first step, else
        `momentum * buf + (1 - dampening) * grad` (written in place)."""
        em = _em()
        state = self.state[p]
        buf = state.get("momentum_buffer")
        if buf is None and not tracing():
            buf = state["momentum_buffer"] = grad.detach().clone()
            written.append(buf)
            return buf
        if buf is None:
            buf = self._traced_first_buffer(p, state)
        damped = sc("1-dampening", p.dtype, lambda: 1 - group.scalar("dampening"))
        new = buf * momentum + damped * grad
        started = self._started.get(p)
        if started is not None:
            # NOTE: a program traced on the first step serves every later one
            new = em.where(started, new, grad)
            started.fill_(True)
            written.append(started)
        buf.copy_(new)
        written.append(buf)
        return buf
