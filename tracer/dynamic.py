"""Dynamic dimensions for `em.compile`: one traced graph, re-shaped for each new size.

Design. A dimension is dynamic when the function has been traced at two sizes of it,
S1 and S2 (both >= 2: sizes 0 and 1 are always specialised, as torch.compile's are),
and the two traces built the same graph up to the numbers that depend on the size.
A call at a third size S is then served without running the Python body: the two
graphs are walked side by side and every number in a node (its shape, its `arg`: a
reshape's or expand's shape, a slice's bounds, a view's strides and offset, a
constant such as a mean's divisor) that differs between them is a function of the
size, found from the two points:

- an integer: affine in the size, `a * S + c` with integer `a` and `c` (a batch dim
  `S`, a flattened `S * 6`, a stride, a slice's stop `S - 1`);
- a float: proportional to the size (`k * S`, a mean's count) or to its inverse
  (`k / S`, the scale `1 / n` of a mean's backward), or an integer affine in the
  size (a variance's `n - 1`), the inverse of one, or one over `S + k` for a small
  `k` (Bessel's factor `n / (n - 1)` of batch norm's running variance).

Numbers equal in both traces stay as they are. The graph is rebuilt at S with those
numbers substituted, each node checked against shape inference, and compiled as any
graph is (a new kernel program per size, from the compiled-program cache when the
size was seen before; the generated code of one size bakes that size in). So the
Python body runs twice per dynamic dimension, however many sizes follow.

Where a number is no such function of the size (a reshape that splits the dimension
into halves, `(S,) -> (2, S // 2)`; a value the Python body computed from the size in
any other way), or the two traces differ in structure (the body branched on the
size), the dimension is specialised again: each new size is traced as without
`dynamic`, and `em.explain` says which number stopped it.

Assumption, as any two-point fit: a size the Python body computes from the dynamic
size is affine in it between the sizes traced and the sizes replayed. The integer
coefficients reject most other functions (`n // 2` at 4 and 6 gives 2 and 3: no
integer slope), but not one that takes the same value at both traced sizes
(`min(n, 8)` traced at 10 and 12), nor a branch on a size (`if x.shape[0] > 100:`)
that went the same way at both: such a body should be compiled with `dynamic=False`.

Which number is which needs no provenance: the BUFFER nodes of the two graphs are
paired by their place among the program's inputs (argument i's placeholder, captured
tensor j), every other node by its place in the graph, so a number equal in both
traces is static even where it happens to equal the traced size.
"""

from __future__ import annotations

import math

from ..ir.build import reshape
from ..ir.node import Node, infer, node
from ..ir.ops import Op
from ..ir.view import View

__all__ = ["Fit", "NotDynamic"]


class NotDynamic(Exception):
    """The two traces do not generalise to other sizes; the message says why."""


class Fit:
    """Numbers of a trace at size s1 and one at size s2, mapped to size s."""

    def __init__(self, s1: int, s2: int, s: int):
        self.s1, self.s2, self.s = s1, s2, s

    def value(self, x, y, what="a value"):
        """x (at s1) and y (at s2) as they are at s, for numbers, tuples and Views.

        `what` names the value in the error (a str, or a function that makes one: the
        text is made only when a value does not fit).
        """
        if x is y:
            return x
        if type(x) is not type(y):
            raise NotDynamic(f"{_text(what)} changed type: {x!r} -> {y!r}")
        if isinstance(x, bool) or x is None or isinstance(x, str):
            if x != y:
                raise NotDynamic(f"{_text(what)} changed: {x!r} -> {y!r}")
            return x
        if isinstance(x, int):
            return self._int(x, y, what)
        if isinstance(x, float):
            return self._float(x, y, what)
        if isinstance(x, (tuple, list)):
            if len(x) != len(y):
                raise NotDynamic(f"{_text(what)} changed length: {x!r} -> {y!r}")
            return type(x)(self.value(a, c, what) for a, c in zip(x, y))
        if isinstance(x, View):
            return View(self.value(x.shape, y.shape, what),
                        self.value(x.strides, y.strides, what),
                        self.value(x.offset, y.offset, what))
        if not _equal(x, y):
            raise NotDynamic(f"{_text(what)} changed: {x!r} -> {y!r}")
        return x

    def _int(self, x: int, y: int, what) -> int:
        if x == y:
            return x
        a, rem = divmod(y - x, self.s2 - self.s1)
        if rem:
            raise NotDynamic(f"{_text(what)} is {x} at size {self.s1} and {y} at size "
                             f"{self.s2}: no affine function of the size with integer coefficients")
        return x + a * (self.s - self.s1)

    def _float(self, x: float, y: float, what) -> float:
        if x == y or (x != x and y != y):
            return x
        if x and y and math.isfinite(x) and math.isfinite(y):
            if _close(x / self.s1, y / self.s2):
                return x / self.s1 * self.s
            if _close(x * self.s1, y * self.s2):
                return x * self.s1 / self.s
            # NOTE: a count made from the size (`n - 1` of a variance), its inverse, or
            # such a count over the size moved by a little (`n / (n - 1)`, Bessel's factor)
            for k in (0, -1, 1, -2, 2):
                p, q = (x, y) if k == 0 else (x * (self.s1 + k), y * (self.s2 + k))
                v = self._integer_affine(p, q)
                if v is not None and v and self.s + k:
                    return float(v) if k == 0 else v / (self.s + k)
            v = self._integer_affine(1 / x, 1 / y)
            if v:
                return 1 / v
        raise NotDynamic(f"{_text(what)} is {x!r} at size {self.s1} and {y!r} at size "
                         f"{self.s2}: neither proportional to the size or its inverse, nor an "
                         "integer affine in it or the inverse of one")

    def _integer_affine(self, p: float, q: float) -> int | None:
        """p (at s1) and q (at s2) at s, when both are integers affine in the size."""
        if not (_close(p, round(p)) and _close(q, round(q))):
            return None
        p, q = round(p), round(q)
        if (q - p) % (self.s2 - self.s1):
            return None
        out = p + (q - p) // (self.s2 - self.s1) * (self.s - self.s1)
        return out if out >= 0 else None

    def graph(self, xs, ys, buffers) -> list[Node]:
        """The nodes ys (traced at s2) are to xs (traced at s1), rebuilt at size s.

        `buffers(a, b, shape)` gives the BUFFER node at s for the BUFFER nodes a and b.
        """
        made: dict = {}
        if len(xs) != len(ys):
            raise NotDynamic("the traces have different numbers of outputs")
        # NOTE: iterative, inputs first: a training step's graph is deeper than Python's
        # recursion limit allows
        stack = [(a, c, False) for a, c in zip(xs, ys)]
        while stack:
            a, c, ready = stack.pop()
            if (a, c) in made:
                continue
            if a.op is not c.op and _peel(a).op is _peel(c).op is Op.BUFFER and \
                    a.shape == c.shape:
                # NOTE: a captured tensor read as its buffer in one trace and through a
                # reshape of it in the other (a replay wrote it back flat in between)
                inner = _peel(a)
                made[(a, c)] = reshape(buffers(inner, _peel(c), inner.shape), a.shape)
                continue
            if a.op is not c.op or a.dtype is not c.dtype or len(a.inputs) != len(c.inputs):
                raise NotDynamic(f"the traces differ in structure: {a.op.name} "
                                 f"{a.dtype.short} -> {c.op.name} {c.dtype.short}")
            if not ready and a.op is not Op.BUFFER:
                stack.append((a, c, True))
                stack.extend((x, y, False) for x, y in zip(a.inputs, c.inputs)
                             if (x, y) not in made)
                continue
            made[(a, c)] = self._node(a, c, made, buffers)
        return [made[(a, c)] for a, c in zip(xs, ys)]

    def _node(self, a: Node, c: Node, made: dict, buffers) -> Node:
        """The node at size s of a (at s1) and c (at s2), whose inputs are in `made`."""
        shape = self.value(a.shape, c.shape, lambda: f"a dim of a {a.op.name} node's shape "
                                                     f"{a.shape} -> {c.shape}")
        if min(shape, default=0) < 0:
            raise NotDynamic(f"a {a.op.name} node's shape {a.shape} -> {c.shape} would be "
                             f"{shape} at size {self.s}")
        if a.op is Op.BUFFER:
            return buffers(a, c, shape)
        inputs = tuple(made[(x, y)] for x, y in zip(a.inputs, c.inputs))
        # NOTE: a random draw's arg is where the trace stood in the stream, not a size:
        # the first trace's numbering is the program's
        arg = a.arg if a.op is Op.RAND else self.value(
            a.arg, c.arg, lambda: f"the arg of a {a.op.name} node {a.arg!r} -> {c.arg!r}")
        if inputs:
            try:
                _, inferred = infer(a.op, inputs, arg)
            except (ValueError, RuntimeError) as e:
                # NOTE: a number that fit two sizes but not this one (the size squared)
                raise NotDynamic(f"{a.op.name} does not apply at size {self.s}: {e}") from e
            if inferred != shape:
                raise NotDynamic(f"{a.op.name} gives {inferred}, not {shape}, at size {self.s}")
        return node(a.op, inputs, arg, a.dtype, shape)


def _equal(x, y) -> bool:
    """x == y, False where the comparison is no bool (arrays)."""
    try:
        return bool(x == y)
    except (TypeError, ValueError):
        return False


def _text(what) -> str:
    return what() if callable(what) else what


def _peel(n: Node) -> Node:
    """The BUFFER node a reshape of one reads, else n."""
    return n.inputs[0] if n.op is Op.RESHAPE and n.inputs[0].op is Op.BUFFER else n


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-12 * max(abs(a), abs(b))
