"""Adagrad, as `torch.optim.Adagrad`."""

from __future__ import annotations

from ._checks import check_eps, check_lr, check_nonneg
from .optimizer import Optimizer, Scalars, _em, advance_steps, is_zero, make_state

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Implements the Adagrad algorithm (Duchi et al., 2011).

    For each parameter :math:`\theta` with gradient :math:`g` (negated when
    ``maximize``), at step :math:`t`:

    .. math::
        g &\leftarrow g + \lambda \theta \quad (\text{weight decay } \lambda \neq 0) \\
        \tilde\gamma &\leftarrow \gamma / (1 + (t - 1) \eta), \quad
        s \leftarrow s + g^2, \quad
        \theta \leftarrow \theta - \tilde\gamma \, g / (\sqrt{s} + \epsilon)

    Args:
        params (iterable): iterable of parameters or named parameters to optimize, or
            dicts defining parameter groups.
        lr (float, optional): learning rate (default: 1e-2).
        lr_decay (float, optional): learning rate decay :math:`\eta` (default: 0).
        weight_decay (float, optional): weight decay (L2 penalty) (default: 0).
        initial_accumulator_value (float, optional): initial value of the sums of squares
            of gradients (default: 0).
        eps (float, optional): term added to the denominator to improve numerical
            stability (default: 1e-10).
        maximize (bool, optional): maximize the objective instead of minimizing
            (default: False).
        foreach, differentiable, fused: accepted for compatibility with PyTorch.

    The state of each parameter is PyTorch's, made when the group is added: ``step`` and
    ``sum``.

    >>> w = em.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = em.optim.Adagrad([w], lr=0.5)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    >>> w
    tensor([ 0.5000, -0.5000], requires_grad=True)
    """

    _scalar_slots = (("lr", None), ("lr_decay", None), ("weight_decay", None), ("eps", None))
    _branch_facts = (("weight_decay", None, is_zero),)

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach=None, *,
                 maximize: bool = False, differentiable: bool = False, fused=None):
        check_lr(lr)
        check_nonneg(lr_decay, "lr_decay")
        check_nonneg(weight_decay, "weight_decay")
        check_nonneg(initial_accumulator_value, "initial_accumulator_value")
        check_eps(eps)
        if differentiable:
            raise NotImplementedError("ember.optim.Adagrad: differentiable=True is not "
                                      "supported")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _init_group_state(self, group: dict) -> None:
        em = _em()
        value = float(group["initial_accumulator_value"])
        for p in group["params"]:
            self.state[p].update(make_state(lambda p=p: {
                "step": em.tensor(0.0), "sum": em.full_like(p, value)}))

    def _group_update(self, group: dict) -> list:
        lr, lr_decay, eps = group.scalar("lr"), group.scalar("lr_decay"), group.scalar("eps")
        params = self._params_with_grad(group)
        if not params:
            return []
        states = [self.state[p] for p in params]
        step = advance_steps([state["step"] for state in states])
        clr = lr / (1 + (step - 1) * lr_decay)
        sc = Scalars()
        written = []
        for i, (p, state) in enumerate(zip(params, states)):
            d = p.dtype
            state_sum = state["sum"]
            grad = -p.grad if group["maximize"] else p.grad
            if group["weight_decay"] != 0:
                grad = grad + sc("wd", d, lambda: group.scalar("weight_decay")) * p
            state_sum.copy_(state_sum + grad * grad)
            std = state_sum.sqrt() + sc("eps", d, lambda: eps)
            p.copy_(p + (grad / std) * sc("-clr", d, lambda: -clr)[i])
            written += [p, state["step"], state_sum]
        return written
