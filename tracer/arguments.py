"""The public functions' argument check: a tensor where one is required.

A function of the tracer reads its tensor argument's attributes at once; called with a
list or a number instead (`em.sum([1, 2])`), it would fail with an AttributeError from
deep inside. `tensor_first` and `tensor_sequence` wrap the function forms `em.X` (the
methods need no check: their self is a tensor) so that such a call raises PyTorch's
TypeError, naming the function, the argument and what it got.
"""

from __future__ import annotations

import functools
import inspect

from .tensor import Tensor

__all__ = ["numpy_names", "tensor_first", "tensor_sequence"]


def _first_name(fn) -> str:
    return next(iter(inspect.signature(fn).parameters))


def tensor_first(fn):
    """`fn` checking that its first argument (by position or keyword) is a Tensor."""
    name, arg = fn.__name__, _first_name(fn)

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        x = args[0] if args else kwargs.get(arg, kwargs.get("input"))
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, "
                            f"not {type(x).__name__}")
        return fn(*args, **kwargs)

    return checked


def tensor_sequence(fn):
    """`fn` checking that its first argument is a sequence of Tensors."""
    name, arg = fn.__name__, _first_name(fn)

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        seq = args[0] if args else kwargs.get(arg)
        if isinstance(seq, Tensor) or not isinstance(seq, (list, tuple)):
            raise TypeError(f"{name}(): argument 'tensors' (position 1) must be a tuple or "
                            f"list of Tensors, not {type(seq).__name__}")
        for i, t in enumerate(seq):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}(): expected Tensor as element {i} in argument 0, "
                                f"but got {type(t).__name__}")
        return fn(*args, **kwargs)

    return checked


# NumPy's keyword -> PyTorch's, accepted wherever PyTorch's parser accepts them
_NUMPY_NAMES = {"axis": "dim", "keepdims": "keepdim"}


def numpy_names(fn):
    """`fn` also accepting NumPy's keywords `axis=` for `dim=` and `keepdims=` for
    `keepdim=`, as PyTorch does for every function and method with those parameters;
    fn itself when it has neither."""
    params = _parameters(fn)
    aliases = {k: v for k, v in _NUMPY_NAMES.items() if v in params and k not in params}
    if not aliases:
        return fn
    name = fn.__name__

    @functools.wraps(fn)
    def renamed(*args, **kwargs):
        if kwargs:
            for alias, real in aliases.items():
                if alias in kwargs:
                    if real in kwargs:
                        raise TypeError(f"{name}() got both '{real}' and its alias "
                                        f"'{alias}': pass one")
                    kwargs[real] = kwargs.pop(alias)
        return fn(*args, **kwargs)

    return renamed


def _parameters(fn) -> frozenset:
    try:
        return frozenset(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return frozenset()
