"""`View`: how a tensor reads its storage's flat buffer (shape, strides, offset).

Strides and offset count elements, not bytes, as in PyTorch. Every method
returns a new View; `reshape` returns None where the strides cannot express the
new shape (then the caller must copy), following PyTorch's `computeStride`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from math import prod

__all__ = ["View", "contiguous_strides"]


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    acc = 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


def _is_contiguous(shape, strides) -> bool:
    if 0 in shape:
        return True
    expected = 1
    for size, stride in zip(reversed(shape), reversed(strides)):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def _has_overlap(shape, strides) -> bool:
    # NOTE: sorted by stride, each dim must step past everything the smaller ones reach
    # (x[:, 1::3] of a (4, 5, 6) tensor has strides (30, 18, 1) and does not overlap).
    dims = sorted((abs(st), sz) for sz, st in zip(shape, strides) if sz > 1)
    extent = 1
    for stride, size in dims:
        if stride < extent:
            return True
        extent += stride * (size - 1)
    return False


_set = object.__setattr__
_INT64_MAX = 2**63 - 1


@lru_cache(maxsize=4096)
def _contiguous(shape: tuple[int, ...]) -> View:
    return View(shape, contiguous_strides(shape), 0)


@dataclass(frozen=True, slots=True)
class View:
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int = 0
    # derived once: the tracer asks these on every op (overlap only of views written to)
    _numel: int = field(init=False, repr=False, compare=False, hash=False)
    _contiguous: bool = field(init=False, repr=False, compare=False, hash=False)
    _overlap: bool | None = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        shape, strides = self.shape, self.strides
        _set(self, "_numel", prod(shape))
        if self._numel > _INT64_MAX:
            raise RuntimeError(f"numel: integer multiplication overflow: the shape "
                               f"{list(shape)} has more elements than 64 bits can count")
        _set(self, "_contiguous", _is_contiguous(shape, strides))
        _set(self, "_overlap", None)

    @staticmethod
    def contiguous(shape: tuple[int, ...], offset: int = 0) -> View:
        if offset == 0:
            return _contiguous(shape if type(shape) is tuple else tuple(shape))
        return View(tuple(shape), contiguous_strides(tuple(shape)), offset)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return self._numel

    def is_contiguous(self) -> bool:
        """PyTorch's rule: dims of size 1 may have any stride; empty views are contiguous."""
        return self._contiguous

    def is_full(self, storage_numel: int) -> bool:
        """Contiguous, offset 0 and covering the whole storage."""
        return self.offset == 0 and self._numel == storage_numel and self._contiguous

    def has_overlap(self) -> bool:
        """True when two indices can address the same element (e.g. an expanded dim)."""
        if self._overlap is None:
            _set(self, "_overlap", _has_overlap(self.shape, self.strides))
        return self._overlap

    def span(self) -> tuple[int, int]:
        """The lowest and one past the highest flat index this view reads."""
        if self.numel == 0:
            return self.offset, self.offset
        lo = hi = self.offset
        for size, stride in zip(self.shape, self.strides):
            if stride >= 0:
                hi += (size - 1) * stride
            else:
                lo += (size - 1) * stride
        return lo, hi + 1

    def permute(self, order: tuple[int, ...]) -> View:
        return View(tuple(self.shape[i] for i in order),
                    tuple(self.strides[i] for i in order), self.offset)

    def expand(self, shape: tuple[int, ...]) -> View:
        """Broadcast to `shape` as PyTorch's `inferExpandGeometry`: grown dims get stride 0;
        a new leading dim of size 1 gets the stride an unsqueeze would give it."""
        extra = len(shape) - self.ndim
        strides = [0] * len(shape)
        for i in range(len(shape) - 1, -1, -1):
            if i >= extra:
                size, stride = self.shape[i - extra], self.strides[i - extra]
            else:
                size = 1
                stride = shape[i + 1] * strides[i + 1] if i + 1 < len(shape) else 0
            strides[i] = stride if size == shape[i] else 0
        return View(tuple(shape), tuple(strides), self.offset)

    def slice(self, dim: int, start: int, stop: int, step: int) -> View:
        """Elements start, start+step, ... < stop of `dim` (start/stop already clamped)."""
        n = max(0, -(-(stop - start) // step))
        shape = list(self.shape)
        strides = list(self.strides)
        shape[dim] = n
        offset = self.offset + start * strides[dim]  # NOTE: kept when empty, as torch
        strides[dim] *= step
        return View(tuple(shape), tuple(strides), offset)

    def select(self, dim: int, index: int) -> View:
        shape = self.shape[:dim] + self.shape[dim + 1:]
        strides = self.strides[:dim] + self.strides[dim + 1:]
        return View(shape, strides, self.offset + index * self.strides[dim])

    def squeeze(self, dims: tuple[int, ...]) -> View:
        keep = [i for i in range(self.ndim) if i not in dims]
        return View(tuple(self.shape[i] for i in keep),
                    tuple(self.strides[i] for i in keep), self.offset)

    def unsqueeze(self, dim: int) -> View:
        stride = self.strides[dim] * self.shape[dim] if dim < self.ndim else 1
        return View(self.shape[:dim] + (1,) + self.shape[dim:],
                    self.strides[:dim] + (stride,) + self.strides[dim:], self.offset)

    def reshape(self, shape: tuple[int, ...]) -> View | None:
        """A view with `shape` reading the same elements in row-major order, or None.

        Follows PyTorch's `computeStride`: each run of old dims that is contiguous
        within itself can be split or merged freely.
        """
        shape = tuple(shape)
        if self.numel == 0:
            return self if shape == self.shape else View(shape, contiguous_strides(shape),
                                                         self.offset)
        if self.strides == _contiguous(self.shape).strides:
            return View.contiguous(shape, self.offset)
        # NOTE: no shortcut for other "contiguous" views: computeStride gives size-1 dims
        # strides of their own (torch's view of a [1, 4] tensor with strides [1, 3] as
        # [1, 4] has strides [12, 3]).
        new_strides = [0] * len(shape)
        view_d = len(shape) - 1
        chunk_base = self.strides[-1] if self.ndim else 1
        tensor_numel = 1
        view_numel = 1
        for d in range(self.ndim - 1, -1, -1):
            tensor_numel *= self.shape[d]
            if d == 0 or (self.shape[d - 1] != 1
                          and self.strides[d - 1] != tensor_numel * chunk_base):
                while view_d >= 0 and (view_numel < tensor_numel or shape[view_d] == 1):
                    new_strides[view_d] = view_numel * chunk_base
                    view_numel *= shape[view_d]
                    view_d -= 1
                if view_numel != tensor_numel:
                    return None
                if d > 0:
                    chunk_base = self.strides[d - 1]
                    tensor_numel = 1
                    view_numel = 1
        if view_d != -1:
            return None
        return View(shape, tuple(new_strides), self.offset)
