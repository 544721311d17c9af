"""ember's front end: the lazy Tensor, its operations, creation and autograd.

Owns everything a user calls: the Tensor and its methods, creation functions,
composite operations (built from ir's primitives), indexing, in-place writes,
printing, grad modes and the autograd surface. Depends on ir/ and runtime/;
nothing below it imports it.
"""

from . import methods as _methods  # noqa: F401  (attaches Tensor methods)
from . import unfold as _unfold  # noqa: F401  (attaches Tensor.unfold)
from .arguments import numpy_names, tensor_first, tensor_sequence
from .autograd import backward, grad, grad_of, value_and_grad
from .compile import GraphBreak, compile, explain
from .creation import *  # noqa: F401,F403
from .creation import __all__ as _creation_all
from .device import device
from .einsum import einsum
from .elementwise import *  # noqa: F401,F403
from .elementwise import __all__ as _elementwise_all
from .indexing import gather, index_select, masked_fill, nonzero, where  # noqa: F401,F811
from .mathops import *  # noqa: F401,F403
from .mathops import __all__ as _mathops_all
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
from .scans import *  # noqa: F401,F403
from .scans import __all__ as _scans_all
from .scatter import *  # noqa: F401,F403
from .scatter import __all__ as _scatter_all
from .sets import *  # noqa: F401,F403
from .sets import __all__ as _sets_all
from .shape import *  # noqa: F401,F403
from .shape import __all__ as _shape_all
from .storage import realize_storages
from .tensor import Size, Tensor

# NOTE: the function forms check their tensor argument (tracer/arguments.py); the
# methods, bound before this, need no check
_TENSOR_FIRST = [n for n in _reductions_all + _shape_all
                 if n not in ("cat", "concat", "stack", "broadcast_shapes")] + [
    n for n in _mathops_all if n not in ("bitwise_left_shift", "bitwise_right_shift")] + [
    *_scans_all, *_scatter_all, *_sets_all,
    "gather", "index_select", "masked_fill", "nonzero"]
for _name in _TENSOR_FIRST:
    globals()[_name] = tensor_first(globals()[_name])
for _name in ("cat", "concat", "stack"):
    globals()[_name] = tensor_sequence(globals()[_name])
for _name in _reductions_all + _shape_all + _mathops_all + _scans_all + _scatter_all + [
        *_elementwise_all, *_sets_all,
        "gather", "index_select"]:
    globals()[_name] = numpy_names(globals()[_name])
# NOTE: and the methods, wherever their modules bound them (one mechanism for both:
# numpy_names leaves a function without `dim` or `keepdim` as it is)
for _name, _fn in list(vars(Tensor).items()):
    if not _name.startswith("__") and callable(_fn) and not isinstance(_fn, type):
        setattr(Tensor, _name, numpy_names(_fn))


def realize(*tensors: Tensor) -> tuple:
    """Compute the given tensors now, as one graph; returns them.

    >>> import ember as em
    >>> a, b = em.realize(em.ones(3) * 2, em.arange(3))
    """
    realize_storages([t._storage for t in tensors])
    return tensors


__all__ = (["Tensor", "Size", "device", "realize", "compile", "explain", "GraphBreak",
            "backward", "grad", "grad_of",
            "value_and_grad", "eager", "enable_grad", "is_eager", "is_grad_enabled",
            "no_grad", "set_eager", "set_grad_enabled", "gather", "index_select",
            "masked_fill", "nonzero", "get_printoptions", "printoptions", "set_printoptions",
            "einsum"]
           + _creation_all + [n for n in _elementwise_all if n != "as_operand"]
           + _reductions_all + _shape_all + _mathops_all + _scans_all + _scatter_all
           + _sets_all)
