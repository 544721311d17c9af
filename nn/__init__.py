"""ember.nn: modules, layers, losses and initialisers, in PyTorch's words.

    import ember as em
    from ember import nn
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

Every layer is composed from ember's primitive operations (nn.functional), so
autograd and fusion see through it.
"""

from . import functional, init  # noqa: F401

__all__ = ["functional", "init"]
