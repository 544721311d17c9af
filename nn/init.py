"""ember.nn.init: in-place initialisers with PyTorch's distributions and fan rules."""

__all__: list = []
