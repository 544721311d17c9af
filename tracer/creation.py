"""Creating tensors: from data, from a spec, and at random.

Data (`tensor`, `from_numpy`) becomes a realised buffer at once. Spec-made tensors
(`zeros`, `full`, `arange`, `eye`, `rand`, ...) are lazy nodes: a constant, an
iota or a random source, so fusion can generate them in registers. Random numbers
come from Philox 4x32-10: a value depends only on (seed, the random op's sequence
number, the element's index), so it is the same on every device and however the
work is fused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import node
from ..ir.ops import Op
from ..runtime.buffers import check_size
from ..runtime.context import current, default_generator
from .data import check_scalar, from_numpy_shared
from .device import check_device
from .elementwise import memory_order
from .records import result
from .tensor import Tensor, copy_of, from_array, wrap_node

__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "eye",
           "arange", "linspace", "rand", "randn", "randint", "zeros_like", "ones_like",
           "full_like", "empty_like", "rand_like", "randn_like", "randint_like", "diag",
           "manual_seed", "initial_seed", "seed", "scalar_tensor"]


def _requiring_grad(t: Tensor, requires_grad: bool) -> Tensor:
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (scalars, nested lists, NumPy arrays, tensors).

    >>> import ember as em
    >>> em.tensor([[1, 2], [3, 4]])
    tensor([[1, 2],
            [3, 4]])
    """
    return _requiring_grad(copy_of(data, dtype, device), requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """`data` itself when it is a tensor of `dtype`; a tensor sharing memory with a NumPy
    array that needs no conversion (as `from_numpy`); otherwise a copy (as `tensor`).

    Args:
        data: a Tensor, a (nested) list or tuple of numbers, a NumPy array or a number.
        dtype (ember.dtype, optional): the dtype wanted; inferred from `data` by default.
        device (str, optional): the device of a new tensor.

    An array of a dtype ember cannot share (uint16, ...), in another byte order or
    with negative strides is copied and converted as `em.tensor` does (torch raises
    for the last two).

    >>> x = em.tensor([1.0, 2.0])
    >>> em.as_tensor(x) is x
    True
    >>> a = np.zeros(2, dtype=np.float32)
    >>> t = em.as_tensor(a)
    >>> a[0] = 5
    >>> t
    tensor([5., 0.])
    """
    if isinstance(data, Tensor) and (dtype is None or dt.to_dtype(dtype) is data.dtype):
        return data
    if isinstance(data, np.ndarray) and _shareable(data, dtype, device):
        return from_numpy(data)
    return tensor(data, dtype, device)


def _shareable(a: np.ndarray, dtype, device) -> bool:
    """Whether `as_tensor(a, dtype, device)` can share `a`'s memory (no conversion)."""
    if check_device(device) != "cpu" or not a.dtype.isnative or any(s < 0 for s in a.strides):
        return False
    try:
        d = dt.from_numpy_dtype(a.dtype)
    except TypeError:
        return False
    return dtype is None or dt.to_dtype(dtype) is d


def scalar_tensor(value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A 0-dim tensor holding `value`, of the default float dtype unless `dtype` is given.

    >>> em.scalar_tensor(3)
    tensor(3.)
    """
    return tensor(value, dtype or dt.default_float(), device, requires_grad)


def from_numpy(a: np.ndarray) -> Tensor:
    """A tensor sharing memory with NumPy array `a` (writes to either are seen by both).

    An in-place operation on the tensor, or on a view of it, is written into `a`
    before it returns. A read-only `a` can be read but not written: an in-place
    operation raises RuntimeError and changes nothing (torch only warns, then writes).

    When NumPy writes `a`, ember sees the write in every value computed *after* it:
    a lazy expression reads `a` when it is computed, so one built before the write
    and computed after it sees the new values (torch computed it at once and does
    not); eager mode (`em.eager()`) computes at once, in torch's order. Values
    computed from `a` are never kept for reuse across realisations.

    >>> a = np.zeros(3, dtype=np.float32)
    >>> t = em.from_numpy(a)
    >>> y = t + 1          # built now, computed when read
    >>> a[0] = 5
    >>> y
    tensor([6., 1., 1.])
    >>> _ = t.add_(1)
    >>> a
    array([6., 1., 1.], dtype=float32)
    """
    arr, d = from_numpy_shared(a)
    return from_array(arr, d, external=True)


def _size(size) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (Sequence, np.ndarray)) and not isinstance(
            size[0], str):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = int(s.item())
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"size must be a sequence of ints, got {type(s).__name__} ({s!r})")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: "
                               f"{list(size)}")
        out.append(int(s))
    return tuple(out)


def _lazy(n, device, requires_grad: bool) -> Tensor:
    check_size(n.shape, n.dtype)
    return _requiring_grad(wrap_node(n, check_device(device)), requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of `size` filled with `fill_value` (dtype inferred from it by default).

    A value the dtype cannot hold raises, as in torch (`em.full((2,), 300,
    dtype=em.uint8)`: "value cannot be converted to type uint8 without overflow").
    """
    d = dt.to_dtype(dtype) if dtype is not None else dt.scalar_dtype(fill_value)
    check_scalar(fill_value, d)
    return _lazy(b.full(fill_value, d, _size((size,) if isinstance(size, int) else (size,))),
                 device, requires_grad)


def _filled(value):
    def make(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        d = dt.to_dtype(dtype) if dtype is not None else dt.default_float()
        return _lazy(b.full(value, d, _size(size)), device, requires_grad)
    return make


zeros = _filled(0)
zeros.__name__, zeros.__doc__ = "zeros", "A tensor of zeros: `em.zeros(2, 3)`."
ones = _filled(1)
ones.__name__, ones.__doc__ = "ones", "A tensor of ones: `em.ones(2, 3)`."
empty = _filled(0)
empty.__name__, empty.__doc__ = "empty", "An uninitialised tensor (ember fills it with zeros)."


def eye(n: int, m: int | None = None, *, dtype=None, device=None,
        requires_grad: bool = False) -> Tensor:
    """The identity matrix (n x m)."""
    m = n if m is None else m
    d = dt.to_dtype(dtype) if dtype is not None else dt.default_float()
    rows = b.expand_to(b.reshape(node(Op.ARANGE, (), (0, 1), dt.int64, (n,)), (n, 1)), (n, m))
    cols = b.expand_to(b.reshape(node(Op.ARANGE, (), (0, 1), dt.int64, (m,)), (1, m)), (n, m))
    return _lazy(b.cast(node(Op.EQ, (rows, cols)), d), device, requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Values start, start+step, ... < end (integers give int64, floats the default float)."""
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    start, end, step = vals
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if any(isinstance(v, float) and not math.isfinite(v) for v in vals):
        raise RuntimeError("unsupported range: arange's bounds must be finite")
    if (end - start) * step < 0:
        raise RuntimeError(f"upper bound and larger bound inconsistent with step sign: "
                           f"start={start}, end={end}, step={step}")
    if dtype is not None:
        d = dt.to_dtype(dtype)
    else:
        d = dt.default_float() if any(isinstance(v, float) for v in vals) else dt.int64
    n = max(0, math.ceil((end - start) / step))
    return _lazy(node(Op.ARANGE, (), (start, step), d, (n,)), device, requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end inclusive (PyTorch's rounding)."""
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    d = dt.to_dtype(dtype) if dtype is not None else dt.default_float()
    if d.is_bool:
        raise NotImplementedError("linspace(): not implemented for dtype bool; make the "
                                  "values in another dtype and compare them instead")
    for bound in (start, end):  # NOTE: torch converts both bounds to the dtype first
        check_scalar(bound, d)
    check_size((steps,), d)
    i = np.arange(steps, dtype=np.float64)
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    half = steps // 2
    vals = np.where(i < half, start + step * i, end - step * (steps - 1 - i))
    if steps == 1:
        vals = np.full(1, start, np.float64)
    if d is dt.bfloat16:
        vals = dt.round_bf16(vals.astype(np.float32))
    return _requiring_grad(from_array(vals.astype(d.np), d, check_device(device)), requires_grad)


# -- random ---------------------------------------------------------------------

def manual_seed(seed: int):
    """Seed the generator: the random numbers that follow are a function of the seed.

    As PyTorch's default generator, it is one for the whole process: a seed set in
    one thread seeds the draws of all threads (runtime/context.py).
    """
    return default_generator.manual_seed(seed)


def initial_seed() -> int:
    """The seed the thread's default generator was last seeded with (`em.manual_seed`).

    >>> _ = em.manual_seed(7)
    >>> em.initial_seed()
    7
    """
    return default_generator.initial_seed()


def seed() -> int:
    """Seed from the operating system's entropy; returns the seed."""
    return manual_seed(int.from_bytes(np.random.default_rng().bytes(8), "little") >> 1)


def _draw() -> tuple[int, int]:
    """(seed, sequence number) of one random op, taken from the thread's generator."""
    return current().generator.draw()


def _float_dtype(dtype) -> dt.DType:
    d = dt.to_dtype(dtype) if dtype is not None else dt.default_float()
    if not d.is_floating_point:
        raise RuntimeError(f"random floats need a floating point dtype, got {d}")
    return d


def _uniform(shape, d: dt.DType, stream: int = 0, drawn: tuple[int, int] | None = None):
    seed, seq = _draw() if drawn is None else drawn
    return node(Op.RAND, (), (seed, seq, stream), d, shape)


def rand(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform random numbers in [0, 1)."""
    d = _float_dtype(dtype)
    return _lazy(_uniform(_size(size), d), device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal random numbers (Box-Muller over two Philox streams)."""
    d = _float_dtype(dtype)
    shape = _size(size)
    drawn = _draw()
    work = dt.float64 if d is dt.float64 else dt.float32
    u1 = _uniform(shape, work, 0, drawn)
    u2 = _uniform(shape, work, 1, drawn)
    r = node(Op.SQRT, (node(Op.MUL, (b.like(u1, -2.0),
                                      node(Op.LOG, (node(Op.SUB, (b.like(u1, 1.0), u1)),)))),))
    z = node(Op.MUL, (r, node(Op.COS, (node(Op.MUL, (b.like(u2, 2 * math.pi), u2)),))))
    return _lazy(b.cast(z, d), device, requires_grad)


def randint(low, high=None, size=None, *, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Uniform random integers in [low, high): `em.randint(10, (3,))`, `em.randint(2, 5, (3,))`."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint() missing required argument 'size'")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} "
                           f">= to={high}")
    d = dt.to_dtype(dtype) if dtype is not None else dt.int64
    shape = _size((size,) if isinstance(size, int) else (size,))
    u = _uniform(shape, dt.float64)
    v = node(Op.FLOOR, (node(Op.ADD, (b.like(u, low), node(Op.MUL, (u, b.like(u, high - low))))),))
    return _lazy(b.cast(v, d), device, requires_grad)


# -- *_like ---------------------------------------------------------------------------

def _like_kwargs(input: Tensor, dtype, device, requires_grad: bool) -> dict:
    return {"dtype": dtype or input.dtype, "device": device or input._storage.device,
            "requires_grad": requires_grad}


def _laid_like(input: Tensor, make) -> Tensor:
    """`make(shape)` of input's shape, laid out in memory as input is (PyTorch's
    preserve_format: `zeros_like(x.T)` is transposed, as `x.T.clone()`)."""
    shape = tuple(input.shape)
    order = None if input._view._contiguous else memory_order((input,), shape)
    if order is None:
        return make(shape)
    t = make(tuple(shape[d] for d in order))
    inverse = [0] * len(order)
    for i, d in enumerate(order):
        inverse[d] = i
    t._view = t._view.permute(tuple(inverse))
    t._node_src = None  # NOTE: t.node reads the storage through the new view
    return t


def zeros_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Zeros with the shape (and by default dtype and device) of `input`."""
    kw = _like_kwargs(input, dtype, device, requires_grad)
    return _laid_like(input, lambda shape: zeros(shape, **kw))


def ones_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Ones with the shape (and by default dtype and device) of `input`, laid out as
    `input` is (PyTorch's default memory format).

    >>> em.ones_like(em.zeros(2, dtype=em.int32))
    tensor([1, 1], dtype=ember.int32)
    """
    kw = _like_kwargs(input, dtype, device, requires_grad)
    return _laid_like(input, lambda shape: ones(shape, **kw))


def empty_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """An uninitialised tensor with the shape (and by default dtype and device) of `input`.

    Its values are unspecified: write them before reading them.
    """
    kw = _like_kwargs(input, dtype, device, requires_grad)
    return _laid_like(input, lambda shape: empty(shape, **kw))


def full_like(input: Tensor, fill_value, *, dtype=None, device=None,
              requires_grad=False) -> Tensor:
    """A tensor filled with `fill_value`, with the shape (and by default dtype and device)
    of `input`.

    >>> em.full_like(em.zeros(2), 7)
    tensor([7., 7.])
    """
    kw = _like_kwargs(input, dtype, device, requires_grad)
    return _laid_like(input, lambda shape: full(shape, fill_value, **kw))


def rand_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples from [0, 1) with the shape (and by default dtype and device) of
    `input` (a floating-point dtype), drawn from the thread's generator as `em.rand`.
    """
    kw = _like_kwargs(input, dtype, device, requires_grad)
    return _laid_like(input, lambda shape: rand(shape, **kw))


def randn_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples with the shape (and by default dtype and device) of `input`
    (a floating-point dtype), drawn from the thread's generator as `em.randn`.
    """
    kw = _like_kwargs(input, dtype, device, requires_grad)
    return _laid_like(input, lambda shape: randn(shape, **kw))


def randint_like(input: Tensor, low, high=None, *, dtype=None, device=None,
                 requires_grad=False) -> Tensor:
    """Random integers in [low, high) with the shape (and by default dtype and device)
    of `input`; `randint_like(input, high)` draws from [0, high), as `em.randint`.
    """
    if high is None:
        low, high = 0, low
    kw = _like_kwargs(input, dtype, device, requires_grad)
    return _laid_like(input, lambda shape: randint(low, high, shape, **kw))


def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """A 1-D input becomes a diagonal matrix; a 2-D input gives its diagonal (a copy)."""
    if input.ndim == 1:
        n = input.shape[0]
        size = n + abs(diagonal)
        rows = np.arange(n) + max(0, -diagonal)
        cols = np.arange(n) + max(0, diagonal)
        out = zeros(size, size, dtype=input.dtype, device=input._storage.device)
        idx = from_array((rows * size + cols).astype(np.int64), dt.int64)
        raw = input.node
        flat = node(Op.SCATTER, (b.flat(out.node), idx.node, raw), 0)
        return result(b.reshape(flat, (size, size)), (input,), "DiagEmbedBackward0", (raw,))
    if input.ndim == 2:
        return input.diagonal(diagonal).clone()
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


Tensor.diag = diag  # the method form of em.diag
