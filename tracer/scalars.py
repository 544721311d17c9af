"""Python floats passed to `em.compile`d functions: runtime parameters, not constants.

A float argument that only flows into tensor operations (`w - lr * g`) reaches the
graph as a constant; the compiled program reads it as a runtime parameter
(runtime/cache.py), so a new value costs no trace. A float the function reads in
Python (`if lr > 0`, `lr * 2`, `int(lr)`, `round(lr)`) or that ember could not follow
from the argument to one constant of the graph is guarded by value instead, as
every other non-tensor argument is.

How it is found, on the first trace of a signature:

1. The function is traced with each float argument wrapped in `_Scalar`, a float
   whose arithmetic, comparisons and conversions note that the function's own code
   read it (ember's code reading it is not noted: step 2 checks what ember did).
2. The floats not read are given other values and the function is traced again.
   The two graphs must be equal but for the constants that hold exactly the
   argument's value in the first trace and the other value in the second; those
   constants are where the argument went. Anything else that differs (a constant
   derived from it, `math.sqrt(lr)`; another structure; a value that is not a
   runtime parameter of the cache, such as an exponent or 1.0) makes every float
   argument of the signature guarded by value.

The second trace runs the function's Python code once more on the first call of
a signature (its side effects happen twice then, as torch.compile may trace twice).
"""

from __future__ import annotations

import math
import os
import sys

from ..ir.graph import toposort
from ..ir.node import Param
from ..ir.ops import Op

__all__ = ["check", "floats", "trace", "wrap"]

# ember's own code (nn/ and optim/ are written on the public API: they count as the user's)
_OWN = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), d)
             + os.sep for d in ("tracer", "ir", "runtime", "codegen", "ember", "public"))
_inside: dict = {}  # code object -> whether it is ember's own code


def _from_user(frame) -> bool:
    code = frame.f_code
    inside = _inside.get(code)
    if inside is None:
        inside = _inside[code] = os.path.abspath(code.co_filename).startswith(_OWN)
    return not inside


class _Scalar(float):
    """A float argument while tracing: notes in `reads` when the function's code uses
    its value (an operator with a number, a comparison, a conversion)."""

    def __new__(cls, value: float, k: int, reads: set):
        self = super().__new__(cls, value)
        self._k = k
        self._reads = reads
        return self


def _noting(name: str):
    base = getattr(float, name)

    def method(self, *args):
        out = base(self, *args)
        # NOTE: an operator with a tensor returns NotImplemented (the tensor's runs)
        if out is not NotImplemented and _from_user(sys._getframe(1)):
            self._reads.add(self._k)
        return out

    method.__name__ = name
    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
              "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__",
              "__rmod__", "__divmod__", "__rdivmod__", "__pow__", "__rpow__", "__neg__",
              "__pos__", "__abs__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
              "__ge__", "__bool__", "__int__", "__float__", "__trunc__", "__floor__",
              "__ceil__", "__round__", "__hash__", "is_integer", "as_integer_ratio", "hex",
              "conjugate"):
    setattr(_Scalar, _name, _noting(_name))


def floats(positional) -> list[int]:
    """Positions of the float arguments (exactly float: a NumPy float is a value)."""
    return [k for k, a in enumerate(positional) if type(a) is float]


def wrap(a, k: int, reads: set):
    """Argument `a` (at position k), a float wrapped to note reads (see `_Scalar`)."""
    return _Scalar(a, k, reads) if type(a) is float else a


def other_value(v: float, k: int) -> float:
    """A value for argument k's second trace: no special value, and far enough from v
    that every integer conversion ember may make of it (int, floor, round, trunc: an
    integer tensor's constant) differs from v's, so a baked conversion shows as a
    difference between the traces."""
    return v + (2.5 + 0.0001234 * (k + 1)) * max(1.0, abs(v) * 2.0 ** -20)


def same_value(a, b) -> bool:
    """Equal floats, -0.0 and 0.0 told apart, NaN equal to NaN."""
    return type(a) is type(b) and repr(a) == repr(b)


def check(program, positional) -> str | None:
    """Why `program`'s value guards on float arguments fail for this call (None: fit)."""
    for k, v in program.scalar_guards:
        a = positional[k]
        if not same_value(a, v):
            return f"argument {k} changed: {v!r} -> {a!r}"
    return None


def _buffers(program) -> dict:
    return {buf.uid: i for i, buf in enumerate(program.sources)}


def match(a, b, first: dict, second: dict) -> dict | None:
    """{id(constant node of a): argument position} where program a (traced with the float
    arguments `first`, {k: value}) and b (with `second`) differ only in those arguments'
    constants; None where they differ otherwise."""
    for name in ("writes", "grads", "cap_writes", "root_grads", "n_random"):
        if getattr(a, name) != getattr(b, name):
            return None
    if len(a.outputs) != len(b.outputs) or len(a.sources) != len(b.sources) or \
            a.structure != b.structure:
        return None
    na, nb = toposort(a.outputs), toposort(b.outputs)
    if len(na) != len(nb):
        return None
    pos_a = {id(n): i for i, n in enumerate(na)}
    pos_b = {id(n): i for i, n in enumerate(nb)}
    buf_a, buf_b = _buffers(a), _buffers(b)
    by_value = {repr(v): k for k, v in first.items()}
    bound: dict[int, int] = {}
    for x, y in zip(na, nb):
        if x.op is not y.op or x.dtype is not y.dtype or x.shape != y.shape or \
                [pos_a[id(i)] for i in x.inputs] != [pos_b[id(i)] for i in y.inputs]:
            return None
        if x.op is Op.BUFFER:
            if not _same_buffer(x.arg, y.arg, buf_a, buf_b):
                return None
        elif x.op is Op.CONST:
            if repr(x.arg) == repr(y.arg):
                continue
            k = by_value.get(repr(x.arg))
            if k is None or repr(y.arg) != repr(second[k]):
                return None
            bound[id(x)] = k
        elif x.arg != y.arg:
            return None
    return bound


def _same_buffer(u: int, v: int, buf_a: dict, buf_b: dict) -> bool:
    """Whether buffers u (of trace a) and v (of b) are one input, or equal data the
    function made itself (`em.tensor([...])` inside it)."""
    if u in buf_a or v in buf_b:
        return buf_a.get(u) == buf_b.get(v)
    from ..runtime.buffers import lookup
    x, y = lookup(u).array, lookup(v).array
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def slots(program, bound: dict) -> list[tuple[int, int]] | None:
    """[(runtime parameter position, argument position)] of the constants `bound`
    (id(node) -> argument) in `program`'s cached program; None where one of them is not
    a runtime parameter there (a keyed value, an exponent)."""
    from ..runtime import cache
    walked = cache.walk(program.outputs)
    if walked is None:
        return None
    tokens, _, _, index, _, _ = walked
    order = sorted((i, n) for n, i in index.items()
                   if n.op is Op.RAND or (n.op is Op.CONST and tokens[i][1] is Param))
    where = {id(n): j for j, (_, n) in enumerate(order)}
    for n in index:
        if n.op is Op.POW and id(n.inputs[1]) in bound:
            return None  # NOTE: an exponent is keyed by value: it selects the code
    out = []
    for node_id, k in bound.items():
        j = where.get(node_id)
        if j is None:
            return None
        out.append((j, k))
    return out


def trace(trace_fn, fn, args, kwargs):
    """`trace_fn(fn, args, kwargs, reads)` (compile._trace), with the program's float
    arguments made runtime parameters where they may be (see the module's docstring):
    sets `scalar_slots` and `scalar_guards` of the program it returns."""
    positional = list(args) + [kwargs[k] for k in sorted(kwargs)]
    ks = floats(positional)
    reads: set = set()
    program = trace_fn(fn, args, kwargs, reads)
    if isinstance(program, str) or not ks:
        return program
    free = [k for k in ks if k not in reads and math.isfinite(positional[k])]
    guarded = [k for k in ks if k not in free]
    if free:
        first = {k: positional[k] for k in free}
        second = {k: other_value(positional[k], k) for k in free}
        n = len(args)
        names = sorted(kwargs)
        args2 = [second.get(k, a) for k, a in enumerate(args)]
        kwargs2 = {name: second.get(n + i, kwargs[name]) for i, name in enumerate(names)}
        other = trace_fn(fn, args2, kwargs2, set())
        bound = None if isinstance(other, str) else match(program, other, first, second)
        found = None if bound is None else slots(program, bound)
        if found is None:
            guarded = ks
        else:
            program.scalar_slots = found
    program.scalar_guards = [(k, positional[k]) for k in sorted(guarded)]
    return program
