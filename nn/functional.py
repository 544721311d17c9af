"""ember.nn.functional: the stateless forms of the layers, in PyTorch's words.

Each function is composed from ember's primitive operations, so autograd and the
fusion pass see through it.
"""

__all__: list = []
