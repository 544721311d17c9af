"""`Parameter`: a tensor that a `Module` registers as one of its learnable values."""

from __future__ import annotations

import ember as em

from ..tracer.tensor import Tensor, _init

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf tensor that a `Module` registers as a parameter when assigned to it.

    As `torch.nn.Parameter`: it shares `data`'s storage (no copy), is a leaf cut from
    `data`'s history, and requires grad unless `requires_grad=False`. Everywhere else
    it is an ordinary tensor (operations, autograd, in-place updates under no_grad).

    Args:
        data (Tensor, optional): the value; an empty float tensor by default.
        requires_grad (bool): whether the parameter requires gradient. Default: True.

    >>> from ember import nn
    >>> p = nn.Parameter(em.zeros(2))
    >>> p.requires_grad, p.is_leaf
    (True, True)
    >>> p
    Parameter containing:
    tensor([0., 0.], requires_grad=True)
    """

    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            data = em.empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter(): data must be a Tensor, got {type(data).__name__}")
        p = object.__new__(cls)
        p._grad = None
        _adopt(p, data.detach())
        p.requires_grad_(requires_grad)
        return p

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        pass  # NOTE: everything happens in __new__ (Tensor.__init__ refuses to run)

    @property
    def data(self) -> Tensor:
        """The value without autograd history (shares the storage); assigning a tensor
        makes the parameter read that tensor's storage, as `param.data = t` in torch."""
        return Tensor.detach(self)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"Parameter.data must be a Tensor, got {type(value).__name__}")
        set_data(self, value)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + Tensor.__repr__(self)

    __str__ = __repr__

    def __reduce_ex__(self, protocol):
        return (Parameter, (Tensor.detach(self), self.requires_grad))

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        p = Parameter(Tensor.__deepcopy__(self, memo), self.requires_grad)
        memo[id(self)] = p
        return p


def _adopt(p: Tensor, src: Tensor) -> None:
    """Make tensor p read src's storage through src's view (p keeps its identity)."""
    _init(p, src._storage, src._view, src.dtype, None)


def set_data(t: Tensor, value: Tensor) -> None:
    """`t.data = value` as torch has it: t keeps its identity (and its requires_grad and
    .grad) but reads value's storage from now on (`Module.to(dtype)` casts so)."""
    rg = t._rg
    _adopt(t, value.detach())
    t._rg = rg
