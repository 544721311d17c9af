"""Adam and AdamW, as `torch.optim.Adam` and `torch.optim.AdamW`."""

from __future__ import annotations

from ._checks import check_betas, check_eps, check_lr, check_nonneg
from .optimizer import Optimizer, Scalars, _em, advance_steps, is_zero, near_one

__all__ = ["Adam", "AdamW", "lerp"]


def lerp(start, end, weight, small: bool):
    """PyTorch's `start.lerp_(end, weight)`: its formula depends on whether |weight| < 0.5
    (`small`, decided from the option's value when the graph is built: both forms give the
    same value up to rounding)."""
    if small:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


class Adam(Optimizer):
    r"""Implements the Adam algorithm (Kingma and Ba, 2014).

    For each parameter :math:`\theta` with gradient :math:`g` (negated when
    ``maximize``), at step :math:`t`:

    .. math::
        g &\leftarrow g + \lambda \theta \quad (\text{weight decay } \lambda \neq 0) \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g, \quad
        v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g^2 \\
        \hat v_t &\leftarrow \max(\hat v_{t-1}, v_t) \ (\text{amsgrad}), \quad v_t
            \ (\text{otherwise}) \\
        \theta &\leftarrow \theta - \frac{\gamma}{1 - \beta_1^t} \,
            \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    Args:
        params (iterable): iterable of parameters or named parameters to optimize, or
            dicts defining parameter groups.
        lr (float, optional): learning rate (default: 1e-3).
        betas (Tuple[float, float], optional): coefficients used for computing running
            averages of the gradient and its square (default: (0.9, 0.999)).
        eps (float, optional): term added to the denominator to improve numerical
            stability (default: 1e-8).
        weight_decay (float, optional): weight decay (L2 penalty) (default: 0).
        decoupled_weight_decay (bool, optional): if True, this optimizer is equivalent to
            AdamW: the weight decay multiplies the parameter by :math:`1 - \gamma\lambda`
            instead of being added to the gradient (default: False).
        amsgrad (bool, optional): whether to use the AMSGrad variant (default: False).
        maximize (bool, optional): maximize the objective instead of minimizing
            (default: False).
        foreach, capturable, differentiable, fused: accepted for compatibility with
            PyTorch; every ember step is one fused program per group, and
            ``differentiable=True`` is not supported.

    The state of each parameter is PyTorch's: ``step`` (a 0-d float32 tensor),
    ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``. The bias
    corrections are computed from ``step`` inside the update's program, so neither a
    new step count nor a new learning rate recompiles it.

    >>> w = em.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = em.optim.Adam([w], lr=0.1)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    >>> w
    tensor([ 0.9000, -0.9000], requires_grad=True)
    """

    _scalar_slots = (("lr", None), ("betas", 0), ("betas", 1), ("eps", None),
                     ("weight_decay", None))
    _branch_facts = (("weight_decay", None, is_zero), ("betas", 0, near_one))

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused=None,
                 decoupled_weight_decay: bool = False):
        check_lr(lr)
        check_eps(eps)
        check_betas(betas)
        check_nonneg(weight_decay, "weight_decay")
        if differentiable:
            raise NotImplementedError(
                f"ember.optim.{type(self).__name__}: differentiable=True is not supported")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("decoupled_weight_decay", False)

    @staticmethod
    def _new_state(p, group: dict) -> dict:
        em = _em()
        state = {"step": em.tensor(0.0), "exp_avg": em.zeros_like(p),
                 "exp_avg_sq": em.zeros_like(p)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = em.zeros_like(p)
        return state

    def _group_update(self, group: dict) -> list:
        em = _em()
        lr, beta1, beta2 = group.scalar("lr"), group.scalar("betas", 0), group.scalar("betas", 1)
        eps, weight_decay = group.scalar("eps"), group.scalar("weight_decay")
        small = near_one(group["betas"][0])
        params = self._params_with_grad(group)
        if not params:
            return []
        states = [self._init_state(p, group) for p in params]
        step = advance_steps([state["step"] for state in states])
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = (1 - beta2 ** step).sqrt()
        sc = Scalars()
        written = []
        for i, (p, state) in enumerate(zip(params, states)):
            d = p.dtype
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            grad = -p.grad if group["maximize"] else p.grad
            if group["weight_decay"] != 0:
                if group["decoupled_weight_decay"]:
                    p.mul_(sc("decay", d, lambda: 1 - lr * weight_decay))
                else:
                    grad = grad + sc("wd", d, lambda: weight_decay) * p
            exp_avg.copy_(lerp(exp_avg, grad, sc("1-beta1", d, lambda: 1 - beta1), small))
            exp_avg_sq.copy_(exp_avg_sq * sc("beta2", d, lambda: beta2)
                             + sc("1-beta2", d, lambda: 1 - beta2) * grad * grad)
            if group["amsgrad"]:
                max_sq = state["max_exp_avg_sq"]
                max_sq.copy_(em.maximum(max_sq, exp_avg_sq))
                written.append(max_sq)
                second = max_sq
            else:
                second = exp_avg_sq
            denom = (second.sqrt() / sc("bc2_sqrt", d, lambda: bias_correction2_sqrt)[i]
                     + sc("eps", d, lambda: eps))
            step_size = sc("-step_size", d, lambda: -(lr / bias_correction1))[i]
            p.copy_(p + (exp_avg / denom) * step_size)
            written += [p, state["step"], exp_avg, exp_avg_sq]
        return written


class AdamW(Adam):
    r"""Implements the AdamW algorithm (Loshchilov and Hutter, 2019): Adam with decoupled
    weight decay, :math:`\theta \leftarrow \theta (1 - \gamma \lambda)` before the Adam
    update.

    Args:
        params (iterable): iterable of parameters or named parameters to optimize, or
            dicts defining parameter groups.
        lr (float, optional): learning rate (default: 1e-3).
        betas (Tuple[float, float], optional): coefficients used for computing running
            averages of the gradient and its square (default: (0.9, 0.999)).
        eps (float, optional): term added to the denominator to improve numerical
            stability (default: 1e-8).
        weight_decay (float, optional): weight decay coefficient (default: 1e-2).
        amsgrad (bool, optional): whether to use the AMSGrad variant (default: False).
        maximize (bool, optional): maximize the objective instead of minimizing
            (default: False).
        foreach, capturable, differentiable, fused: as for :class:`Adam`.

    >>> w = em.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = em.optim.AdamW([w], lr=0.1, weight_decay=0.0)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    >>> w
    tensor([ 0.9000, -0.9000], requires_grad=True)
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach=None, capturable: bool = False, differentiable: bool = False,
                 fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
