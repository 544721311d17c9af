"""One compiled program for every size of a dynamic dimension.

A dynamic dimension of `em.compile` (tracer/dynamic.py) gives one graph per size
`s`, each the same graph up to numbers affine in `s` (shapes, a reshape's or a
slice's numbers, strides, offsets). A `SizeFamily` compiles that family once:

* **Key.** The graph is built at three sizes (`POINTS`) and walked as the cache
  walks any graph (`cache.structure`). The three keys must agree everywhere but in
  integers, and each integer that differs must be exactly `a * s + c` (integer `a`,
  `c`) at all three: it becomes `Sym(a, c)`. The result, with `Sym`s where the size
  is, is the program's key in the compiled-graph cache (`("size", key)`), so one
  program serves every function and every trace whose graphs have that structure.
* **Program.** The graph at each of the three sizes is compiled with no choice that
  depends on a size (`compile_key(..., whole=True)`: no tiles, no reused slots), and
  the three generated sources must agree token for token but in integer literals,
  each exactly affine in `s` as above. The source of the first size, with each such
  literal written `(a*_size+c)`, is wrapped in `_make(_size)`, and `program(inputs,
  params)` finds the size from the flat size of one input (`(inputs[j].size - c) //
  a`) and runs the program `_make` made for it (kept per size).
* **Tiles.** The graphs are also compiled in tiles at every size (`compile_key(...,
  any_size=True)`: every kernel with an axis to tile runs in tiles, on the thread
  pool, with its rows per tile and its scratch arrays' shapes computed when it runs
  from literals of its domain, `codegen/numpy_gen.py`); where those three sources too
  agree but in affine literals, they become `_make_tiled(_size)`, which runs where
  the graph's largest value has more than `tiled_above` elements at the size (NumPy's
  rules tile a kernel above that many), `_make` below. `report` says where the tiled form differed.
* **Disk.** The module is kept in the disk cache (runtime/cache.py) under a digest
  of the three canonical graphs' own disk names (which carry ember's, NumPy's and the
  compiler's versions and the tile size), so a new process that builds the same
  three graphs loads it instead of compiling six. A loaded program's first call is
  checked against the graph it serves (outputs of other shapes or dtypes: compiled
  again and rewritten), as any program loaded from disk is.
* **Use.** The graph at a size `s` is served by the family's program only where its
  own structural key is the family's key at `s`, token for token (`matches`), and
  every size-dependent number of it is at least 2 in magnitude (sizes 0 and 1 fold
  and broadcast differently: those graphs are compiled as any graph is). Otherwise,
  or where the family could not be made (the generated code depends on the size in
  another way: `why` says how), each size compiles its own program, as without it.

NOTE: the three sizes are 11, 23 and 1031, uncommon ones (where the size equals
another number of the graph, nodes hash-cons together and the keys differ). A choice
the compiler makes from a size (a threshold) shows as a difference in the keys or
sources, and no program is made. A number the generated source computes from the
size in a way that is not affine yet agrees at all three (`min(s, 4)`) would go
unseen; the compiler's whole and any-size forms make none (their choices compare
sizes only with 0 and 1, and sizes served keep every size-dependent number at 2 or
more; the tiled form's rows per tile are computed by the code it generates).
"""

from __future__ import annotations

import hashlib
import io
import tokenize
from dataclasses import dataclass

from ..codegen.numpy_policy import NumpyRules
from ..ir.view import View
from . import cache
from .compiled import Compiled
from .config import debug, options, which_run

__all__ = ["POINTS", "SizeFamily", "Sym", "fit", "matches", "parameterise", "symbolic_key"]

POINTS = (11, 23, 1031)


@dataclass(frozen=True)
class Sym:
    """An integer `a * s + c` of the dynamic size `s`."""

    a: int
    c: int

    def at(self, s: int) -> int:
        return self.a * s + self.c

    def value(self, s: int):
        """What the key holds at size `s`."""
        return self.at(s)

    def text(self) -> str:
        """The expression as generated code writes it, over the name `_size` (NOTE: a
        name the generator never gives: its tile functions call their scratch `s`)."""
        head = "_size" if self.a == 1 else f"{self.a}*_size"
        return f"({head}{self.c:+d})" if self.c else f"({head})"


@dataclass(frozen=True)
class SymText(Sym):
    """An integer constant `a * s + c` of the graph, keyed by its text (`repr`)."""

    def value(self, s: int):
        return repr(self.at(s))


class NotSymbolic(Exception):
    """The graphs or programs of the sizes differ in more than affine integers."""


def fit(values, points=POINTS) -> int | Sym:
    """The integers `values` (one per size of `points`) as a constant or a `Sym`."""
    first = values[0]
    if all(v == first for v in values):
        return first
    a, rem = divmod(values[1] - first, points[1] - points[0])
    c = first - a * points[0]
    if rem or any(a * p + c != v for p, v in zip(points, values)):
        raise NotSymbolic(f"{list(values)} at sizes {list(points)} is no affine function "
                          "of the size with integer coefficients")
    return Sym(a, c)


def symbolic_key(keys, points=POINTS):
    """The structural keys of one graph at `points`, with `Sym` where they differ
    (`SymText` where an integer constant's text does)."""
    first = keys[0]
    kind = type(first)
    if any(type(k) is not kind for k in keys):
        raise NotSymbolic(f"a number changed type: {[type(k).__name__ for k in keys]}")
    if kind is int:
        return fit(keys, points)
    if kind is str and first.lstrip("-").isdigit() and \
            all(k.lstrip("-").isdigit() for k in keys):
        sym = fit([int(k) for k in keys], points)
        return first if type(sym) is int else SymText(sym.a, sym.c)
    if kind is tuple:
        if any(len(k) != len(first) for k in keys):
            raise NotSymbolic(f"a number changed length: {_short(first)} -> {_short(keys[1])}")
        return tuple(symbolic_key(parts, points) for parts in zip(*keys))
    if kind is View:
        return ("View",) + tuple(symbolic_key([(k.shape, k.strides, k.offset) for k in keys],
                                              points))
    if any(k != first for k in keys):
        raise NotSymbolic(f"a number changed: {_short(first)} -> {_short(keys[1])}")
    return first


def _short(x) -> str:
    text = repr(x)
    return text if len(text) < 80 else text[:77] + "..."


def key_of(keys, points=POINTS):
    """`symbolic_key` of whole structural keys (one per size of `points`)."""
    if len({len(k) for k in keys}) > 1:
        raise NotSymbolic(f"the graphs at sizes {list(points)} differ in structure: "
                          f"{[len(k) - 1 for k in keys]} nodes")
    return symbolic_key(keys, points)


def matches(sym, key, s: int) -> bool:
    """Whether the structural key `key` is the symbolic key `sym` at size `s`, where
    every size-dependent number is at least 2 in magnitude, positive where it grows
    with the size and negative where it falls (see the module's docstring)."""
    kind = type(sym)
    if kind is Sym or kind is SymText:
        v = sym.at(s)
        return key == sym.value(s) and (v >= 2 if sym.a > 0 else v <= -2)
    if kind is tuple:
        if sym[:1] == ("View",) and type(key) is View:
            return matches(sym[1:], (key.shape, key.strides, key.offset), s)
        return type(key) is tuple and len(key) == len(sym) and \
            all(matches(x, y, s) for x, y in zip(sym, key))
    return type(key) is kind and key == sym


def parameterise(sources: list[str], points=POINTS) -> str:
    """The first of `sources` (generated for `points`) with every integer literal that
    differs between them written as the `Sym` it is; raises NotSymbolic where they
    differ in anything else."""
    streams = [list(tokenize.generate_tokens(io.StringIO(src).readline)) for src in sources]
    if any(len(t) != len(streams[0]) for t in streams):
        raise NotSymbolic("the generated sources differ in length")
    edits = []
    for toks in zip(*streams):
        first = toks[0]
        if all(t.type == first.type and t.string == first.string for t in toks):
            continue
        if not all(t.type == tokenize.NUMBER and t.string.isdigit() for t in toks):
            raise NotSymbolic(f"the generated sources differ: {first.string!r} -> "
                              f"{toks[1].string!r} (line {first.start[0]})")
        value = fit([int(t.string) for t in toks], points)
        edits.append((first.start, first.end, value.text()))
    lines = sources[0].splitlines(keepends=True)
    for (row, col), (row2, col2), text in reversed(edits):
        assert row == row2  # NOTE: a number token never spans lines
        line = lines[row - 1]
        lines[row - 1] = line[:col] + text + line[col2:]
    return "".join(lines)


_KEEP_SIZES = 64  # programs made per size (`_make(s)`) kept by a family's program


def _maker(name: str, source: str) -> str:
    """`source`, whose numbers are expressions of `_size`, as the body of
    `def name(_size)` returning its `program`."""
    body = "".join("    " + ln if ln.strip() else ln
                   for ln in source.splitlines(keepends=True))
    return f"def {name}(_size):\n{body}    return program\n"


def wrap(source: str, j: int, size: Sym, tiled: str | None = None, work: str = "0",
         tiled_above: int = 0) -> str:
    """`source` (and `tiled`, its form in tiles, if any), whose numbers are expressions
    of the size, as a module whose `program(inputs, params)` finds the size from input
    `j`'s flat size, `size`, and runs the tiled form where `work` (an expression of
    `_size`) is more than `tiled_above`."""
    choose = "_make"
    text = _maker("_make", source)
    if tiled is not None:
        text += _maker("_make_tiled", tiled)
        choose = f"(_make_tiled if {work} > {tiled_above} else _make)"
    return (text + "_made = {}\n"
            "def program(inputs, params):\n"
            f"    _size = (inputs[{j}].size - {size.c}) // {size.a}\n"
            "    fn = _made.get(_size)\n"
            "    if fn is None:\n"
            f"        if len(_made) >= {_KEEP_SIZES}:\n"
            "            _made.clear()\n"
            f"        fn = _made[_size] = {choose}(_size)\n"
            "    return fn(inputs, params)\n")


def _largest(key) -> str:
    """The element count of the largest value of the graph of symbolic `key` (largest at
    the last of `POINTS`), as an expression of `_size`: how large its largest kernel
    is, which decides whether the family's program runs in tiles."""
    best, text = -1, "0"
    for token in key[:-1]:
        while token[0] == -2:  # a known value: its own token inside
            token = token[1]
        shape = token[2] if token[0] == -1 else token[3]
        at = 1
        for d in shape:
            at *= d.at(POINTS[-1]) if type(d) is Sym else d
        if at > best:
            best = at
            text = "*".join(d.text() if type(d) is Sym else str(d) for d in shape) or "1"
    return text


class FamilyProgram(Compiled):
    """A family's program; `checked`: whether a call has shown it fits its graphs (a
    program loaded from the disk cache is checked on its first call)."""

    __slots__ = ("checked",)

    def __init__(self, fn, source: str, kernels: int = -1, report: str = "",
                 checked: bool = True):
        super().__init__(fn, source, kernels, -1, report)
        self.checked = checked


class SizeFamily:
    """The graphs of one traced function at every size of a dynamic dimension,
    served by one program (see the module's docstring).

    `make(size)` gives the graph's output nodes at `size` (raising where there is
    none). `why` is None where the family has its program, else why each size
    compiles its own; `entry` is the program.
    """

    def __init__(self, make):
        self.key = None
        self.entry: FamilyProgram | None = None
        self.size_input: tuple[int, Sym] | None = None
        self.why: str | None = None
        self.make = make
        try:
            self._build(make)
        except NotSymbolic as e:
            self.why = str(e)
        except Exception as e:  # noqa: BLE001 - a size the graph has no form at, say
            if options.verify and not _expected(e):
                raise
            self.why = f"{type(e).__name__}: {e}"

    def _build(self, make) -> None:
        graphs = [make(p) for p in POINTS]
        key = key_of([cache.structure(outputs)[0] for outputs in graphs])
        self.key = ("size", key)
        self.size_input = _size_input(key)
        memory = cache.memory
        entry = memory.get(self.key)
        if entry is None:
            keys = [cache.canonical(outputs)[0] for outputs in graphs]
            digest = _digest(keys) if options.cache else None
            entry = _load(digest) if digest is not None else None
            if entry is None:
                entry = _compile(keys, self.size_input, _largest(key), digest)
            memory.put(self.key, entry)
        self.entry = entry

    def lookup(self, outputs, s: int):
        """(program, inputs, params) for the graph behind `outputs` at size `s`, or None
        where the family's program does not serve it."""
        if self.entry is None or self.entry.fn is None:
            return None
        key, inputs, params = cache.structure(outputs)
        j, size = self.size_input
        if not matches(self.key[1], key, s) or inputs[j].size != size.at(s):
            return None
        if options.verify or not self.entry.checked:
            return self._checked(outputs), inputs, params
        return self.entry, inputs, params

    def _checked(self, outputs) -> Compiled:
        """The family's program, run so that its outputs are checked against the shapes
        and dtypes of `outputs` (the graph at the size it serves): on every call where
        the verifier is on, else until a first call fits. A program loaded from the disk
        cache that does not fit is compiled again (and rewritten there); one compiled in
        this process that does not fit is a bug (AssertionError)."""
        from .compiled import fits
        entry = self.entry
        fn = entry.fn

        def checked(inputs, params):
            values = fn(inputs, params)
            if fits(values, outputs):
                entry.checked = True
                if not options.verify:
                    wrapper.fn = fn  # NOTE: later calls run the program itself
                return values
            if entry.checked:
                raise AssertionError("the program of a dynamic size gave outputs of other "
                                     f"shapes or dtypes than the graph's: "
                                     f"{[getattr(v, 'shape', v) for v in values]} for "
                                     f"{[n.shape for n in outputs]}")
            cache.memory.counters.disk_rejects += 1
            if options.debug:
                debug(f"{which_run()}: a program of a dynamic size loaded from the disk cache "
                      "gave outputs of other shapes or dtypes than its graph's; compiling it "
                      "again")
            keys = [cache.canonical(self.make(p))[0] for p in POINTS]
            fresh = _compile(keys, self.size_input, _largest(self.key[1]),
                             _digest(keys) if options.cache else None)
            self.entry = fresh
            cache.memory.put(self.key, fresh)
            wrapper.fn = fresh.fn
            return fresh.fn(inputs, params)

        wrapper = Compiled(checked, entry.source, entry.kernels, entry.peak_bytes, entry.report)
        return wrapper


def _digest(keys) -> str:
    """The disk cache's name of the family of the canonical graphs `keys` (at `POINTS`):
    it is made from those three graphs, with the compiler and options their own names
    carry (`cache.digest_of`)."""
    names = " ".join(cache.digest_of(k) for k in keys)
    return hashlib.sha256(f"size-family {list(POINTS)}\n{names}".encode()).hexdigest()


def _load(digest: str) -> FamilyProgram | None:
    """The family's program stored on disk under `digest`, unchecked, or None."""
    from .compiled import _exec
    stored = cache.disk.load(digest)
    if stored is None:
        return None
    source, meta = stored
    try:
        fn = _exec(source)
    except Exception:  # noqa: BLE001 - a stored file that fails to load is rewritten
        cache.memory.counters.disk_rejects += 1
        cache.memory.counters.disk_hits -= 1
        return None
    if options.debug:
        debug(f"{which_run()}: loaded one program for every size of a dynamic dimension from "
              f"the disk cache, {cache.disk.path(digest)}")
    return FamilyProgram(fn, source, meta.get("kernels", -1), meta.get("report", ""),
                         checked=False)


def _compile(keys, size_input: tuple[int, Sym], work: str, digest: str | None
             ) -> FamilyProgram:
    """The family's program, made from the canonical graphs `keys` at `POINTS` (and
    stored on disk under `digest`, if any): their whole form, and their tiled form
    where that too is the same source up to numbers affine in the size (it runs where
    `work`, the graph's largest value's element count, is more than `tiled_above`, as
    an ordinary program tiles its kernels above that many)."""
    from .compiled import _exec, compile_key
    cache.memory.counters.compiles += 1
    programs = [compile_key(k, "numpy", whole=True) for k in keys]
    if any(e.fn is None for e in programs):
        raise NotSymbolic("the graph does not compile: "
                          + next(e.report for e in programs if e.fn is None))
    tiled, why_untiled = None, None
    try:
        forms = [compile_key(k, "numpy", any_size=True) for k in keys]
        if any(e.fn is None for e in forms):
            raise NotSymbolic(next(e.report for e in forms if e.fn is None))
        tiled = parameterise([e.source for e in forms])
    except NotSymbolic as e:
        why_untiled = str(e)
    above = NumpyRules(options.tile_elems).tiled_above
    source = wrap(parameterise([e.source for e in programs]), *size_input, tiled, work, above)
    first = programs[0]
    report = first.report
    if why_untiled is not None:
        report += f"\nruns whole at every size (its tiled form differs by size: {why_untiled})"
    entry = FamilyProgram(_exec(source), source, first.kernels, report)
    if digest is not None:
        cache.disk.store(digest, source, {"kernels": entry.kernels, "report": report})
    if options.debug:
        tiles = "whole" if tiled is None else f"in tiles above {above} elements"
        debug(f"{which_run()}: compiled one program of {entry.kernels} kernels for "
              f"every size of a dynamic dimension (made at sizes {list(POINTS)}; {tiles})")
        if options.debug >= 2:
            debug(f"{which_run()}: source\n{source}")
    return entry


def _size_input(key) -> tuple[int, Sym]:
    """(j, Sym): input j of the graph of symbolic `key` has `Sym`'s elements (the
    first input whose element count grows with the size; its array is flat or of
    its node's shape, so `size` is its number of elements)."""
    j = 0
    for token in key:
        if type(token) is tuple and token[:1] == (-1,):
            numel = [1] * len(POINTS)
            for d in token[2]:
                numel = [n * (d.at(p) if type(d) is Sym else d) for n, p in zip(numel, POINTS)]
            try:
                size = fit(numel)
            except NotSymbolic:
                size = None  # the size appears twice in its shape: another input may do
            if type(size) is Sym and size.a > 0:
                return j, size
            j += 1
    raise NotSymbolic("no input's number of elements tells the dynamic size")


def _expected(e: Exception) -> bool:
    return isinstance(e, (NotImplementedError, TypeError, ValueError, RuntimeError))
