"""Global modes: gradient recording and eager execution.

`no_grad`, `enable_grad` and `eager` work as context managers and as decorators,
as PyTorch's do. Eager mode's starting value comes from `EMBER_EAGER`
(runtime.config reads it).
"""

from __future__ import annotations

import functools

from ..runtime.config import options

__all__ = ["is_grad_enabled", "set_grad_enabled", "no_grad", "enable_grad", "set_eager",
           "is_eager", "eager"]

_grad_enabled = [True]
# how many backward passes ran (a trace of em.compile notes whether its graph was consumed)
backward_passes = [0]


def is_grad_enabled() -> bool:
    """Whether operations on tensors that require grad are being recorded."""
    return _grad_enabled[0]


class _GradMode:
    """Base of the grad-mode switches: a context manager and a decorator."""

    mode: bool

    def __enter__(self):
        self._prev = _grad_enabled[0]
        _grad_enabled[0] = self.mode
        return self

    def __exit__(self, *exc):
        _grad_enabled[0] = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Disable gradient recording: `with em.no_grad(): x.sub_(lr * x.grad)`."""

    mode = False


class enable_grad(_GradMode):
    """Enable gradient recording inside a `no_grad` region."""

    mode = True


class set_grad_enabled(_GradMode):
    """`em.set_grad_enabled(False)` switches recording off (also as a context manager)."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._prev = _grad_enabled[0]
        _grad_enabled[0] = self.mode

    def __enter__(self):
        return self

    def __call__(self, fn):
        raise TypeError("use set_grad_enabled as a function or a context manager")


def set_eager(flag: bool) -> None:
    """Run every operation at once through the reference interpreter (True) or lazily."""
    options.eager = bool(flag)


def is_eager() -> bool:
    return options.eager


class eager:
    """`with em.eager():` runs the block eagerly; also a decorator."""

    def __enter__(self):
        self._prev = options.eager
        options.eager = True
        return self

    def __exit__(self, *exc):
        options.eager = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with eager():
                return fn(*args, **kwargs)
        return wrapper
