"""Per-thread state: grad mode, eager mode, the trace being recorded, the generator.

Each thread (and each asyncio task, which runs in its own `contextvars` context)
has one `Context`. A context is never changed in place: a switch (`em.no_grad()`,
`em.set_eager(True)`, em.compile's tracing) sets a changed copy for the calling
thread only, so a `with em.no_grad():` in one thread does not stop another from
recording gradients, as in PyTorch, whose grad mode is per thread.

What a new thread starts with, as in PyTorch: grad enabled, eager mode as
`EMBER_EAGER` says (read once, runtime/config.py; not whatever the creating
thread switched to), no trace being recorded, and the default generator.

The random numbers follow PyTorch's default generator: one `Generator` for the
whole process, shared by every thread, so `em.manual_seed(s)` in any thread
seeds the draws of all of them. Its seed and counter change together under a
lock, so concurrent draws never get the same numbers and a draw never sees a
new seed with an old counter. Which thread draws which numbers is up to the
scheduler: a seeded sequence of draws is reproducible when one thread makes it.
While em.compile traces a function, the tracing thread draws from a generator of
its trace's own (`Generator.fork`), so the trace never moves the shared counter
another thread is drawing from.
"""

from __future__ import annotations

import contextvars
import threading

from .config import options

__all__ = ["Context", "Generator", "current", "default_generator", "swap_eager", "swap_grad",
           "switch"]

DEFAULT_SEED = 67280421310721


class Generator:
    """A seed and the next sequence number of the random ops that draw from it.

    A random op takes one sequence number; its values are a function of (seed,
    sequence, element), so the numbers are reproducible after `manual_seed`.
    """

    def __init__(self, seed: int = DEFAULT_SEED, next_seq: int = 0):
        self._lock = threading.Lock()
        self._seed = seed
        self._next = next_seq

    def manual_seed(self, seed: int) -> int:
        """Seed the generator and restart its counter; returns the seed."""
        seed = int(seed)
        if seed < 0:
            seed &= 0xFFFFFFFFFFFFFFFF
        with self._lock:
            self._seed, self._next = seed, 0
        return seed

    def initial_seed(self) -> int:
        return self._seed

    def draw(self, n: int = 1) -> tuple[int, int]:
        """(seed, first sequence number) of `n` consecutive numbers, now taken."""
        with self._lock:
            first = self._next
            self._next = first + n
            return self._seed, first

    def position(self) -> tuple[int, int]:
        """(seed, next sequence number), taking nothing."""
        with self._lock:
            return self._seed, self._next

    def fork(self) -> Generator:
        """A private generator that draws what this one would draw next."""
        return Generator(*self.position())

    def __repr__(self) -> str:
        seed, seq = self.position()
        return f"Generator(seed={seed}, next={seq})"


default_generator = Generator()


_SAME = object()  # a field `Context.replace` keeps


class Context:
    """One thread's modes; immutable: `replace` makes a changed copy.

    `grad_enabled`: operations record gradients. `eager`: every operation runs at
    once through the reference interpreter. `trace`: the em.compile trace being
    recorded (tracer/compile.py), or None. `generator`: where random ops draw.
    """

    __slots__ = ("grad_enabled", "eager", "trace", "generator")

    def __init__(self, grad_enabled: bool, eager: bool, trace, generator: Generator):
        # NOTE: the slots' own setters, since __setattr__ refuses (a switch builds a
        # Context, so this stays cheap)
        _set_grad(self, grad_enabled)
        _set_eager(self, eager)
        _set_trace(self, trace)
        _set_generator(self, generator)

    def replace(self, grad_enabled=_SAME, eager=_SAME, trace=_SAME, generator=_SAME) -> Context:
        """A copy with the given fields changed."""
        return Context(self.grad_enabled if grad_enabled is _SAME else grad_enabled,
                       self.eager if eager is _SAME else eager,
                       self.trace if trace is _SAME else trace,
                       self.generator if generator is _SAME else generator)

    def __setattr__(self, name, value):
        raise AttributeError("a Context is immutable: switch modes with em.no_grad(), "
                             "em.set_eager() and the like")

    def __repr__(self) -> str:
        return (f"Context(grad_enabled={self.grad_enabled}, eager={self.eager}, "
                f"trace={self.trace!r}, generator={self.generator!r})")


_set_grad, _set_eager, _set_trace, _set_generator = (
    getattr(Context, name).__set__ for name in Context.__slots__)

# NOTE: the four contexts that trace nothing and draw from the default generator, by
# (grad_enabled, eager): switching grad or eager mode outside a trace (every
# `with em.no_grad():`, every backward pass) builds no new Context
_PLAIN = {(g, e): Context(g, e, None, default_generator) for g in (False, True)
          for e in (False, True)}
_PLAIN_GRAD = {e: {g: _PLAIN[g, e] for g in (False, True)} for e in (False, True)}
_PLAIN_EAGER = {g: {e: _PLAIN[g, e] for e in (False, True)} for g in (False, True)}

_var: contextvars.ContextVar[Context] = contextvars.ContextVar(
    "ember_context", default=_PLAIN[True, options.eager_default])

# NOTE: the calling thread's Context; bound once so the per-op read of grad mode
# (`current().grad_enabled`) costs one C call and one slot load.
current = _var.get
_set = _var.set


def switch(**changes) -> Context:
    """Set the calling thread's context to a copy with `changes`; returns the old one."""
    old = current()
    _set(old.replace(**changes))
    return old


def swap_grad(flag: bool) -> bool:
    """Set the calling thread's grad mode (a bool); returns the one it had."""
    old = current()
    if old.trace is None and old.generator is default_generator:
        _set(_PLAIN_GRAD[old.eager][flag])
    else:
        _set(old.replace(grad_enabled=flag))
    return old.grad_enabled


def swap_eager(flag: bool) -> bool:
    """Set the calling thread's eager mode (a bool); returns the one it had."""
    old = current()
    if old.trace is None and old.generator is default_generator:
        _set(_PLAIN_EAGER[old.grad_enabled][flag])
    else:
        _set(old.replace(eager=flag))
    return old.eager
