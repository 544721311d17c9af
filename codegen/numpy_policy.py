"""The NumPy back end's measured fusion and tiling choices (`NumpyRules`).

NumPy runs a kernel as one ufunc call per statement; a large kernel runs in tiles
of whole rows on a small thread pool (codegen/numpy_gen.py). The fusion pass asks
these rules (through `codegen.backend.NumpyBackend`) whether a node may join a
kernel and along which axis a kernel is tiled. Kept apart from the generator so
that the runtime's options read `TILE_ELEMS` without importing the compiler.
"""

from __future__ import annotations

from math import prod

import numpy as np

from ..ir.node import Node
from ..ir.ops import REDUCE, Op
from ..ir.passes.fusion import FusionRules, Group, joined

__all__ = ["RECOMPUTE_MIN_BYTES", "ROW_SUM_MAX", "TILED_ABOVE", "TILE_ELEMS", "NumpyRules",
           "sums_rows", "tile_axis"]

# Elements per tile of a large kernel (EMBER_TILE overrides). Measured on a
# 2-core machine with 2 MiB of L2 per core: one thread runs an 8-op chain at
# the same speed with 32K to 256K; two threads need tiles of about 128K, as
# smaller ones spend their time handing the GIL back and forth between ufunc
# calls (32K: slower on two threads than on one).
TILE_ELEMS = 1 << 17
# Kernels over more elements than this run in tiles, with scratch arrays reused
# between calls; smaller ones compute each value into a fresh array. (A fresh
# array of 128 KiB or more comes from mmap and is page-faulted on every call:
# a 16-op chain over 64K float32 elements took 6x longer computed that way.)
TILED_ABOVE = 1 << 13


# Where a kernel reads a value of another of at least this many bytes, it may compute it
# itself (ir/passes/recompute.py) rather than load it: measured on a 2-core machine with
# 2 MiB of L2 per core, storing and loading 2 MiB arrays (a transformer step's MLP and
# attention intermediates) cost more than recomputing them, 512 KiB ones less.
RECOMPUTE_MIN_BYTES = 1 << 20


def tile_axis(domain, shapes, reduce_axes) -> int | None:
    """The axis a kernel can be split along: every computed value spans it, and it
    comes before every reduced axis.

    NOTE: the second condition keeps tiled reductions bit-identical to whole-array
    ones: a tile is then a block of whole reduction rows laid out as in the full
    array, so NumPy reduces each row in the same order. A column block of a
    reduction over rows is summed in another order, so such kernels run whole.
    """
    first_reduced = min(reduce_axes, default=len(domain))
    for a, size in enumerate(domain[:first_reduced]):
        if size > 1 and all(s[a] == size for s in shapes):
            return a
    return None


class NumpyRules(FusionRules):
    """NumPy's choices: a node may not take away a large kernel's axis to tile; a
    kernel over more than `TILED_ABOVE` elements (or `tile_elems`, if fewer) is tiled
    where its reductions read whole rows."""

    name = "numpy"

    def __init__(self, tile_elems: int = TILE_ELEMS):
        self.tile_elems = tile_elems
        self.tiled_above = min(TILED_ABOVE, tile_elems)

    def tiled(self, tile_elems: int) -> NumpyRules:
        """These rules with tiles of `tile_elems` elements."""
        return type(self)(tile_elems)

    def why_not(self, fuser, gs: list[Group], n: Node, domain) -> str | None:
        if prod(domain) > self.tiled_above:
            shapes, raxes = joined(gs, n)
            if tile_axis(domain, shapes, raxes) is None and any(
                    tile_axis(g.domain, g.shapes, g.reduce_axes) is not None for g in gs):
                return "joining would leave the large kernel without an axis to tile"
        return None

    def may_recompute(self, fuser, g: Group, n: Node) -> bool:
        # NOTE: a value that stays in the caches between its store and its loads costs
        # less stored than recomputed (a CNN step over 512 KiB activations ran 5% slower
        # recomputing them); and a large kernel that runs whole computes each value into
        # a fresh array, page-faulted on every call
        # NOTE: a program compiled whole serves every size of a dynamic dimension
        # (runtime/symbolic.py): no choice there may depend on a size, so none recomputes
        if self.tiled_above == float("inf"):
            return False
        if g.domain and prod(g.domain) * n.dtype.np.itemsize < RECOMPUTE_MIN_BYTES:
            return False
        if prod(g.domain) > self.tiled_above and tile_axis(
                g.domain, g.shapes | {n.shape}, g.reduce_axes) is None:
            return False
        return super().may_recompute(fuser, g, n)

    def tile_axis(self, fuser, g: Group, members: set[int]) -> int | None:
        large = g.shapes and prod(g.domain) > self.tiled_above
        if large and all(self.reduce_reads_rows(fuser, n, members)
                         for n in g.nodes if n.op in REDUCE):
            return tile_axis(g.domain, g.shapes, g.reduce_axes)
        return None

    @staticmethod
    def reduce_reads_rows(fuser, n: Node, members: set[int]) -> bool:
        """Whether a tile of reduction n reads the same layout as the whole array.

        NOTE: NumPy orders a reduction's loops by the input's strides; a block
        of rows of a contiguous array keeps that order (bit-identical sums), a
        block of a transposed or broadcast view may not, so such kernels run
        whole.
        """
        x = n.inputs[0]
        if id(x) in members:
            return x.op is not Op.EXPAND
        return x.op is not Op.CONST and fuser.contiguous(x)


# NOTE: the longest last axis `row_sums` sums; longer rows keep NumPy's pairwise sum,
# whose error grows more slowly than a sum along the row's SIMD lanes
ROW_SUM_MAX = 1024


def sums_rows(shape, axes, in_dtype, out_dtype) -> bool:
    """Whether a sum over `axes` of an array of `shape` runs as `sum_last`: float32 or
    float64 summed in its own dtype over the last axis only, of an array of two or more
    dims (`sum_last` then picks by the row's length, when it runs).

    NOTE: NumPy's reduction along a short contiguous axis pays its loop setup per row
    (a softmax's 8192 rows of 64: 0.9 ms); einsum's summing loop takes 0.11 ms. The
    choice depends on the shape and dtypes only, never on how many rows a tile
    holds, and einsum sums every contiguous row of a given length in the same order
    wherever it lies in memory, so a tiled kernel sums each row as the whole array
    does; the reference interpreter and the NumPy kernels both call `sum_last`, so
    they agree bit for bit. (BLAS's matrix-vector product is faster still, but how it
    groups a row's terms depends on how many rows it is given.) The length is read
    when the sum runs, not when a kernel is generated: one generated program serves
    every size of a dynamic dimension (runtime/symbolic.py), a row's length too.
    """
    return (len(shape) >= 2 and tuple(axes) == (len(shape) - 1,)
            and np.dtype(in_dtype) == np.dtype(out_dtype)
            and np.dtype(out_dtype) in (np.dtype(np.float32), np.dtype(np.float64)))
