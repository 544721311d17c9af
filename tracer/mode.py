"""Grad mode and eager mode, per thread.

`no_grad`, `enable_grad`, `set_grad_enabled` and `eager` work as context managers
and as decorators (also of generator functions: each step of the generator runs in
the mode), as PyTorch's do. Every switch changes the calling thread's context only
(runtime/context.py): a thread inside `with em.no_grad():` does not stop another
from recording gradients, and `em.set_eager(True)` makes only the calling thread
eager. A new thread starts with grad enabled and in the eager mode `EMBER_EAGER`
says (runtime/config.py reads it once), whatever the thread that started it chose.
"""

from __future__ import annotations

import functools
import inspect
import sys

from ..runtime.context import current, swap_eager, swap_grad

__all__ = ["is_grad_enabled", "set_grad_enabled", "no_grad", "enable_grad", "set_eager",
           "is_eager", "eager"]


def is_grad_enabled() -> bool:
    """Whether operations on tensors that require grad are recorded (in this thread)."""
    return current().grad_enabled


def _check_bool(name: str, flag) -> bool:
    if not isinstance(flag, bool):
        raise TypeError(f"{name}(): argument must be bool, not {type(flag).__name__}")
    return flag


def _wrap_generator(make_mode, gen_fn):
    """gen_fn, with each step of its generator (start, send, throw, close) in a fresh mode."""
    @functools.wraps(gen_fn)
    def wrapper(*args, **kwargs):
        gen = gen_fn(*args, **kwargs)
        try:
            with make_mode():
                response = gen.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with make_mode():
                        gen.close()
                    raise
                except BaseException:
                    with make_mode():
                        response = gen.throw(*sys.exc_info())
                else:
                    with make_mode():
                        response = gen.send(request)
        except StopIteration as stop:
            return stop.value
    return wrapper


class _Mode:
    """Base of the switches: sets one context field for a block, then restores it.

    Only that field is restored on exit, so a `set_eager` inside a `no_grad` block
    outlives the block, as in PyTorch.
    """

    mode: bool

    @staticmethod
    def _swap(flag: bool) -> bool:
        """Set the mode this switch is about; return the one before."""
        raise NotImplementedError

    def __enter__(self):
        self._prev = self._swap(self.mode)
        return self

    def __exit__(self, *exc):
        self._swap(self._prev)
        return False

    def _fresh(self) -> _Mode:
        """A new switch like this one (each call of a decorated function gets its own)."""
        return type(self)()

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(self._fresh, fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)
        return wrapper


class _NoArgMode(_Mode):
    """A switch that may decorate without parentheses: `@em.no_grad` as `@em.no_grad()`."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return object.__new__(cls)
        return cls()(orig_func)


class no_grad(_NoArgMode):
    """Disable gradient recording in this thread: `with em.no_grad(): x.sub_(lr * x.grad)`."""

    _swap, mode = staticmethod(swap_grad), False


class enable_grad(_NoArgMode):
    """Enable gradient recording (in this thread) inside a `no_grad` region."""

    _swap, mode = staticmethod(swap_grad), True


class set_grad_enabled(_Mode):
    """`em.set_grad_enabled(False)` switches recording off in this thread at once.

    Also a context manager (the previous mode comes back at the end of the block) and
    a decorator (the call sets nothing then; the decorated function runs in the mode).
    """

    _swap = staticmethod(swap_grad)

    def __init__(self, mode: bool):
        self.mode = _check_bool("set_grad_enabled", mode)
        self._prev = swap_grad(self.mode)

    def __enter__(self):
        return self

    def _fresh(self) -> _Mode:
        return set_grad_enabled(self.mode)

    def __call__(self, fn):
        swap_grad(self._prev)  # as a decorator it changes nothing now
        return super().__call__(fn)


def set_eager(flag: bool) -> None:
    """Run every operation of the calling thread at once through the reference
    interpreter (True) or lazily (False). Other threads keep their own mode; a new
    thread starts in the mode `EMBER_EAGER` says."""
    swap_eager(_check_bool("set_eager", flag))


def is_eager() -> bool:
    """Whether the calling thread runs operations eagerly."""
    return current().eager


class eager(_Mode):
    """`with em.eager():` runs the block eagerly (in this thread); also a decorator."""

    _swap, mode = staticmethod(swap_eager), True
