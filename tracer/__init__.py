"""ember's front end: the lazy Tensor, its operations, creation and autograd.

Owns everything a user calls: the Tensor and its methods, creation functions,
composite operations (built from ir's primitives), indexing, in-place writes,
printing, grad modes and the autograd surface. Depends on ir/ and runtime/;
nothing below it imports it.
"""

from . import methods as _methods  # noqa: F401  (attaches Tensor methods)
from .arguments import tensor_first, tensor_sequence
from .autograd import backward, grad, grad_of, value_and_grad
from .compile import CheckError, CheckReport, GraphBreak, compile, explain
from .creation import *  # noqa: F401,F403
from .creation import __all__ as _creation_all
from .device import device
from .elementwise import *  # noqa: F401,F403
from .elementwise import __all__ as _elementwise_all
from .indexing import gather, index_select, masked_fill, nonzero
from .mode import (
    eager,
    enable_grad,
    is_eager,
    is_grad_enabled,
    no_grad,
    set_eager,
    set_grad_enabled,
)
from .printing import get_printoptions, printoptions, set_printoptions
from .reductions import *  # noqa: F401,F403
from .reductions import __all__ as _reductions_all
from .shape import *  # noqa: F401,F403
from .shape import __all__ as _shape_all
from .storage import realize_storages
from .tensor import Size, Tensor

# NOTE: the function forms check their tensor argument (tracer/arguments.py); the
# methods, bound before this, need no check
_TENSOR_FIRST = [n for n in _reductions_all + _shape_all
                 if n not in ("cat", "concat", "stack", "broadcast_shapes")] + [
    "gather", "index_select", "masked_fill", "nonzero"]
for _name in _TENSOR_FIRST:
    globals()[_name] = tensor_first(globals()[_name])
for _name in ("cat", "concat", "stack"):
    globals()[_name] = tensor_sequence(globals()[_name])


def realize(*tensors: Tensor) -> tuple:
    """Compute the given tensors now, as one graph; returns them.

    >>> import ember as em
    >>> a, b = em.realize(em.ones(3) * 2, em.arange(3))
    """
    realize_storages([t._storage for t in tensors])
    return tensors


__all__ = (["Tensor", "Size", "device", "realize", "compile", "explain", "GraphBreak",
            "CheckError", "CheckReport",
            "backward", "grad", "grad_of",
            "value_and_grad", "eager", "enable_grad", "is_eager", "is_grad_enabled",
            "no_grad", "set_eager", "set_grad_enabled", "gather", "index_select",
            "masked_fill", "nonzero", "get_printoptions", "printoptions", "set_printoptions"]
           + _creation_all + [n for n in _elementwise_all if n != "as_operand"]
           + _reductions_all + _shape_all)
