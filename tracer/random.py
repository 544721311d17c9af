"""Random numbers beyond `rand`/`randn`/`randint`: `em.Generator`, `generator=`,
`randperm`, `normal`, `bernoulli`, `multinomial`, and the in-place samplers
(`normal_`, `uniform_`, `bernoulli_`, `random_`, `exponential_`).

Every sampler is composed from ember's uniform source (a RAND node: Philox 4x32-10
of (seed, sequence number, element), runtime/philox.py), so its values are the same
lazily, in eager mode and compiled, and reproducible after `manual_seed`. A
`Generator` is a seed with its own counter; `generator=g` makes an op draw its
sequence numbers from g instead of the default generator. Inside `em.compile`, an
op given an explicit generator is a graph break (a compiled replay draws from the
default generator only), so the function runs uncompiled for that signature.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from ..ir import dtypes as dt
from ..runtime import context as rc
from ..runtime.context import current, switch
from . import creation, mode
from .compile import graph_break
from .device import check_device
from .device import device as _device
from .elementwise import broadcast_shapes
from .tensor import Tensor

__all__ = ["Generator", "bernoulli", "get_rng_state", "multinomial", "normal", "randperm",
           "set_rng_state", "with_generator"]


class Generator(rc.Generator):
    """A random number generator of its own (PyTorch's `torch.Generator`): a seed and a
    counter, independent of the default generator `em.manual_seed` seeds.

    >>> g = em.Generator().manual_seed(3)
    >>> a = em.rand(2, generator=g)
    >>> b = em.rand(2, generator=em.Generator().manual_seed(3))
    >>> bool((a == b).all())
    True
    """

    def __init__(self, device="cpu"):
        super().__init__()
        self.device = _device(check_device(device))

    def manual_seed(self, seed: int) -> Generator:
        """Seed this generator and restart its counter; returns the generator."""
        super().manual_seed(seed)
        return self

    def seed(self) -> int:
        """Seed from the operating system's entropy; returns the seed."""
        s = int.from_bytes(np.random.default_rng().bytes(8), "little") >> 1
        super().manual_seed(s)
        return s

    def get_state(self) -> Tensor:
        """The state as a uint8 tensor of 16 bytes (seed, counter), for `set_state`."""
        return _state(self)

    def set_state(self, new_state: Tensor) -> Generator:
        """Restore a state `get_state` gave; returns the generator."""
        _set_state(self, new_state)
        return self


def _state(g: rc.Generator) -> Tensor:
    seed, seq = g.position()
    raw = np.frombuffer(seed.to_bytes(8, "little") + seq.to_bytes(8, "little"), np.uint8)
    return creation.tensor(raw.copy(), dtype=dt.uint8)


def _set_state(g: rc.Generator, state) -> None:
    if not isinstance(state, Tensor) or state.dtype is not dt.uint8 or tuple(state.shape) != (16,):
        raise TypeError("RNG state must be a uint8 tensor of 16 bytes, as get_state gives")
    raw = bytes(np.asarray(state, dtype=np.uint8).tobytes())
    seed, seq = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
    with g._lock:
        g._seed, g._next = seed, seq


def get_rng_state() -> Tensor:
    """The default generator's state (a uint8 tensor), for `em.set_rng_state`."""
    return _state(rc.default_generator)


def set_rng_state(new_state: Tensor) -> None:
    """Restore the default generator's state from `em.get_rng_state()`.

    >>> s = em.get_rng_state()
    >>> a = em.rand(3)
    >>> em.set_rng_state(s)
    >>> bool((em.rand(3) == a).all())
    True
    """
    _set_state(rc.default_generator, new_state)


@contextlib.contextmanager
def _drawing_from(generator):
    """Random ops inside draw from `generator` (None: the default one)."""
    if generator is None:
        yield
        return
    if not isinstance(generator, rc.Generator):
        raise TypeError(f"generator must be an em.Generator, got {type(generator).__name__}")
    if current().trace is not None:
        graph_break()  # NOTE: a replay would draw from the default generator
    prev = switch(generator=generator)
    try:
        yield
    finally:
        switch(generator=prev.generator)


def with_generator(fn):
    """fn with a keyword `generator=` (drawing from it instead of the default generator)."""
    @functools.wraps(fn)
    def wrapped(*args, generator=None, **kwargs):
        with _drawing_from(generator):
            return fn(*args, **kwargs)
    return wrapped


def randperm(n: int, *, generator=None, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """A random permutation of 0..n-1 (int64 by default).

    >>> sorted(em.randperm(5).tolist())
    [0, 1, 2, 3, 4]
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise RuntimeError(f"randperm: n must be a non-negative int, got {n!r}")
    d = dt.int64 if dtype is None else dt.to_dtype(dtype)
    with _drawing_from(generator):
        keys = creation.rand(int(n), dtype=dt.float64, device=device)
    out = keys.argsort().to(d)
    return out.requires_grad_() if requires_grad else out


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Normal samples of mean `mean` and standard deviation `std`: tensors (broadcast
    together; gradients flow to both, as PyTorch's), or floats with `size`.

    >>> em.normal(2.0, 0.0, size=(2,))
    tensor([2., 2.])
    """
    tm, ts = isinstance(mean, Tensor), isinstance(std, Tensor)
    if not ts and std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    if not tm and not ts:
        if size is None:
            raise TypeError("normal() with float mean and std needs a size")
        shape = (size,) if isinstance(size, int) else tuple(size)
        with _drawing_from(generator):
            z = creation.randn(shape, dtype=dtype, device=device)
        out = z * std + mean
        return out.requires_grad_() if requires_grad else out
    if size is not None:
        raise TypeError("normal() takes a size only with float mean and std")
    ref = mean if tm else std
    if not ref.dtype.is_floating_point:
        raise RuntimeError(f"normal expects a floating point mean and std, got {ref.dtype}")
    shape = broadcast_shapes(tuple(mean.shape) if tm else (), tuple(std.shape) if ts else ())
    with _drawing_from(generator):
        z = creation.randn(shape, dtype=ref.dtype, device=ref._storage.device)
    return mean + std * z


def bernoulli(input: Tensor, p=None, *, generator=None) -> Tensor:  # noqa: A002
    """1 with probability `input` (or `p`, when given) elementwise, else 0; input's dtype.

    >>> em.bernoulli(em.tensor([0.0, 1.0]))
    tensor([0., 1.])
    """
    prob = input if p is None else p
    if not isinstance(prob, Tensor) and not 0 <= prob <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={prob}")
    with _drawing_from(generator):
        u = creation.rand(tuple(input.shape), dtype=dt.float64, device=input._storage.device)
    with mode.no_grad():
        return (u < prob).to(input.dtype)


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,  # noqa: A002
                generator=None) -> Tensor:
    """Indices drawn from the categories of each row of `input` (1-D or 2-D, non-negative
    weights, not necessarily summing to 1): with replacement by inverse CDF, without it
    by sorting exponential keys (each draw takes a category not yet taken, with
    probability proportional to its weight). An int64 tensor of (rows,) num_samples.

    >>> em.multinomial(em.tensor([0.0, 1.0, 0.0]), 2, replacement=True)
    tensor([1, 1])
    """
    if input.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{input.dtype.name.capitalize()}")
    n = input.shape[-1]
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    if not replacement and num_samples > n:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    if current().trace is None:
        _check_distribution(input, num_samples, replacement)
    p = input.detach().to(dt.float64)
    rows = p if p.ndim == 2 else p.unsqueeze(0)
    with _drawing_from(generator):
        u = creation.rand((rows.shape[0], num_samples if replacement else n),
                          dtype=dt.float64, device=input._storage.device)
    if replacement:
        cdf = rows.cumsum(-1)
        target = u * cdf[:, -1:]
        # NOTE: the index is how many categories end at or below the target; a category
        # of weight 0 ends where the one before it ends, so it is never chosen
        idx = (cdf.unsqueeze(1) <= target.unsqueeze(2)).sum(-1).clamp(max=n - 1)
    else:
        keys = (-(1.0 - u).log()) / rows  # exponential(1) / weight; the smallest go first
        idx = keys.argsort(-1)[:, :num_samples]
    idx = idx.to(dt.int64)
    return idx if input.ndim == 2 else idx[0]


def _check_distribution(input: Tensor, num_samples: int, replacement: bool) -> None:
    """PyTorch's checks of the weights (this reads their values)."""
    w = input.detach().to(dt.float64)._array()  # NOTE: reads, never shares
    if not np.isfinite(w).all():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if (w < 0).any():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if (w.reshape(-1, w.shape[-1]).sum(-1) <= 0).any():
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and ((w.reshape(-1, w.shape[-1]) > 0).sum(-1) < num_samples).any():
        raise RuntimeError("invalid multinomial distribution (with replacement=False, not "
                           "enough non-negative category to sample)")


# -- in-place samplers -----------------------------------------------------------------

def _fill(self: Tensor, sample: Tensor, name: str) -> Tensor:
    """Write `sample` into self in place (a leaf that requires grad refuses, as torch)."""
    if self._requires_grad and self.is_leaf and mode.is_grad_enabled():
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    with mode.no_grad():
        return self.copy_(sample)


def _float_self(self: Tensor, name: str) -> None:
    if not self.dtype.is_floating_point:
        raise RuntimeError(f"{name} expects a floating point tensor, got {self.dtype}")


def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    """Fill self with normal samples of `mean` and `std` (in place)."""
    _float_self(self, "normal_")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    with _drawing_from(generator):
        z = creation.randn(tuple(self.shape), dtype=self.dtype, device=self._storage.device)
    return _fill(self, z * std + mean, "normal_")


def uniform_(self, a: float = 0.0, b: float = 1.0, *, generator=None, **kwargs) -> Tensor:
    """Fill self with uniform samples in [a, b) (in place; also `from=`/`to=`)."""
    a, b = kwargs.pop("from", a), kwargs.pop("to", b)
    _float_self(self, "uniform_")
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found "
                           f"from={a} > to={b}")
    with _drawing_from(generator):
        u = creation.rand(tuple(self.shape), dtype=self.dtype, device=self._storage.device)
    return _fill(self, u * (b - a) + a, "uniform_")


def bernoulli_(self, p=0.5, *, generator=None) -> Tensor:
    """Fill self with 1 (probability `p`, a float or a tensor) or 0 (in place)."""
    return _fill(self, bernoulli(self, p, generator=generator), "bernoulli_")


def exponential_(self, lambd: float = 1.0, *, generator=None) -> Tensor:
    """Fill self with exponential samples of rate `lambd` (in place)."""
    _float_self(self, "exponential_")
    if lambd <= 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    with _drawing_from(generator):
        u = creation.rand(tuple(self.shape), dtype=dt.float64, device=self._storage.device)
    return _fill(self, (-(1.0 - u).log() / lambd).to(self.dtype), "exponential_")


def random_(self, from_: int = 0, to=None, *, generator=None, **kwargs) -> Tensor:
    """Fill self with integers drawn uniformly from [from, to) (in place); with one
    argument, [0, from); with none, [0, 2**mantissa] for floats and the dtype's range
    from 0 for integers, as PyTorch."""
    from_ = kwargs.pop("from", from_)
    if to is None and "to" not in kwargs and from_ != 0:
        from_, to = 0, from_
    to = kwargs.pop("to", to)
    if to is None:
        to = _random_top(self.dtype)
    if from_ >= to:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got "
                           f"from={from_} >= to={to}")
    with _drawing_from(generator):
        u = creation.rand(tuple(self.shape), dtype=dt.float64, device=self._storage.device)
    v = (u * (to - from_)).floor() + from_
    return _fill(self, v.to(self.dtype), "random_")


def _random_top(d: dt.DType) -> int:
    if d is dt.bool_:
        return 2
    if d.is_floating_point:
        bits = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}[d.name]
        return 2 ** bits + 1
    return int(np.iinfo(d.np).max) + 1


for _fn in (normal_, uniform_, bernoulli_, exponential_, random_):
    setattr(Tensor, _fn.__name__, _fn)


def _bernoulli_method(self, p=None, *, generator=None) -> Tensor:
    """`em.bernoulli(self, p)`."""
    return bernoulli(self, p, generator=generator)


_bernoulli_method.__name__ = "bernoulli"
Tensor.bernoulli = _bernoulli_method
Tensor.multinomial = multinomial
