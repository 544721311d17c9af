"""`Dropout`: zeroes elements at random while training."""

from __future__ import annotations

from .layer_functional import dropout
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """While training, zero each element with probability p and scale the others by
    1 / (1 - p); in eval mode, the identity.

    >>> m = nn.Dropout(0.5).eval()
    >>> m(em.ones(2))
    tensor([1., 1.])
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
