"""ember.nn.functional: the stateless forms of the layers, in PyTorch's words.

Each function is composed from ember's primitive operations, so autograd and the
fusion pass see through it.
"""

__all__: list = []

# NOTE: the spatial operations live in spatial.py (one import block, kept apart)
from .spatial import *  # noqa: E402,F401,F403
from .spatial import __all__ as _spatial_all  # noqa: E402

__all__ = __all__ + _spatial_all
