"""ember against torch where their semantics used to differ.

Each case runs as torch, and as ember lazy, eager and compiled (`em.compile`), on a
small input and on one large enough (with small tiles) for the tiled kernels; the
results, or the errors, must be torch's. Cases: var/std with no degrees of freedom
left, integer division by zero, out-of-range Python values at creation, half
precision reductions, NaN and inf cast to integers, softmax at infinities and on
integers, shapes too large to hold, and a few small ones (0-d nonzero, flip with a
repeated dim, linspace to bool).
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np
import pytest
from helpers import assert_same, needs_torch, torch

import ember as em
from ember.runtime.config import options

pytestmark = [needs_torch,
              pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")]

MODES = ("lazy", "eager", "compiled")
NAN, INF = float("nan"), float("inf")


@pytest.fixture(params=["small", "tiled"])
def size(request):
    """An element count: small (direct kernels), or > 8K elements cut into tiles."""
    saved = options.tile_elems
    if request.param == "tiled":
        options.tile_elems = 1024
    yield 6 if request.param == "small" else 12_000
    options.tile_elems = saved


def _run(fn, arrays, mode):
    """fn(em, *tensors) as ember runs it in `mode`: ("ok", outputs) or ("raise", error)."""
    tensors = [em.tensor(a) for a in arrays]
    try:
        if mode == "compiled":
            out = em.compile(lambda *ts: fn(em, *ts))(*tensors)
        elif mode == "eager":
            with em.eager():
                out = fn(em, *tensors)
        else:
            out = fn(em, *tensors)
        outs = out if isinstance(out, tuple) else (out,)
        em.realize(*outs)
        return "ok", outs
    except Exception as e:  # noqa: BLE001 - compared with torch's outcome
        return "raise", e


def _torch(fn, arrays):
    try:
        out = fn(torch, *[torch.from_numpy(np.array(a)) for a in arrays])
        return "ok", out if isinstance(out, tuple) else (out,)
    except Exception as e:  # noqa: BLE001
        return "raise", e


def like_torch(fn, *arrays, match: str | None = None, bits: bool = False, **tol):
    """ember gives torch's values (or raises where torch does) in every mode.

    `match`: a pattern both errors must match (default: the same exception type);
    `bits`: lazy, eager and compiled also agree bit for bit.
    """
    kind, want = _torch(fn, arrays)
    got = {}
    for mode in MODES:
        k, out = _run(fn, arrays, mode)
        if kind == "raise":
            assert k == "raise", f"{mode}: torch raised {want!r}, ember gave {out}"
            assert isinstance(out, type(want)) or isinstance(want, type(out)), (mode, out, want)
            if match is not None:
                assert any(__import__("re").search(match, str(e)) for e in (out,)), (mode, out)
            continue
        assert k == "ok", f"{mode}: ember raised {out!r}; torch gave {want}"
        assert len(out) == len(want)
        for i, (e, t) in enumerate(zip(out, want)):
            assert_same(e, t, what=f"{mode} output {i}", **tol)
        got[mode] = [o.numpy() if o.dtype is not em.bfloat16 else o.float().numpy()
                     for o in out]
    if bits and got:
        for mode in MODES[1:]:
            for a, b in zip(got["lazy"], got[mode]):
                assert a.tobytes() == b.tobytes(), f"lazy and {mode} differ: {a} {b}"


# -- var / std: correction >= N ------------------------------------------------------------

@pytest.mark.parametrize("extra", [-1, 0, 1, 0.5])
def test_var_and_std_without_degrees_of_freedom_are_inf_or_nan(size, extra):
    # torch divides by max(0, N - correction): inf for a positive sum of squares, NaN
    # for zero (a constant or empty input), never a negative variance
    x = np.linspace(-1, 2, size).astype(np.float32)
    c = size + extra
    like_torch(lambda M, x: (x.var(correction=c), x.std(correction=c),
                             M.ones_like(x).var(correction=c),
                             x.reshape(2, -1).var(1, correction=c / 2)), x)
    like_torch(lambda M, x: (x[:0].var(), x[:0].std(correction=0),
                             x.reshape(2, -1)[:, :0].var(1)), x)


# -- integer // and % by zero ---------------------------------------------------------------

def _ints(size, zero_at=None):
    a = (np.arange(size, dtype=np.int64) * 7919) % 23 - 11
    if zero_at is not None:
        a[zero_at] = 0
    else:
        a[a == 0] = 5
    return a


@pytest.mark.parametrize("op", ["//", "%", "trunc", "floor"])
def test_integer_division_by_zero_raises_as_torch(size, op):
    fns = {"//": lambda M, a, b: a // b, "%": lambda M, a, b: a % b,
           "trunc": lambda M, a, b: M.div(a, b, rounding_mode="trunc"),
           "floor": lambda M, a, b: M.div(a, b, rounding_mode="floor")}
    fn = fns[op]
    a, ok, bad = _ints(size), _ints(size)[::-1].copy(), _ints(size, zero_at=size - 1)
    like_torch(fn, a, ok)
    like_torch(fn, a, bad, match="ZeroDivisionError")
    like_torch(lambda M, a: fn(M, a, 0), a, match="ZeroDivisionError")
    like_torch(lambda M, a: fn(M, 7, a), bad, match="ZeroDivisionError")
    like_torch(lambda M, a: fn(M, a.to(M.uint8), M.zeros_like(a).to(M.uint8)), ok,
               match="ZeroDivisionError")
    like_torch(lambda M, a: fn(M, a[:0], 0), a)  # nothing divided: no error
    like_torch(lambda M, a: fn(M, a.double(), 0.0), a)  # floats: inf / nan


def test_integer_division_by_zero_is_also_a_python_zero_division_error():
    with pytest.raises(ZeroDivisionError):
        print(em.tensor([1, 2]) // em.tensor([1, 0]))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        em.tensor([1, 2]) % 0


@pytest.mark.parametrize("eager", [False, True])
def test_in_place_integer_division_by_zero_changes_nothing(eager):
    x = em.tensor([5, 7, -3])
    view = x[1:]
    em.set_eager(eager)
    for divide in (lambda t: t.floor_divide_(em.tensor([1, 0, 1])),
                   lambda t: t.remainder_(0),
                   lambda t: t.div_(em.tensor([2, 2, 0]), rounding_mode="trunc")):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            divide(x)
        assert x.tolist() == [5, 7, -3] and view.tolist() == [7, -3]
    t = torch.tensor([5, 7, -3])
    x //= em.tensor([2, 3, 2])
    t //= torch.tensor([2, 3, 2])
    x %= 3
    t %= 3
    assert x.tolist() == t.tolist() and view.tolist() == t[1:].tolist()  # in place, as torch


def test_integer_trunc_division_is_exact_beyond_float_precision():
    a = [2**62 + 1, -(2**62) - 3, -7, 7, -7, 7, 0]
    b = [3, 7, 2, -2, -2, 2, -5]
    like_torch(lambda M, a, b: M.div(a, b, rounding_mode="trunc"), np.array(a), np.array(b))


# -- creation: values that do not fit ---------------------------------------------------------

@pytest.mark.parametrize("data,dtype", [
    ([2**40], "int32"), ([300], "uint8"), ([-256], "uint8"), ([-0.5], "uint8"),
    ([255.9], "uint8"), ([NAN], "int32"), ([INF], "int64"), ([-INF], "int16"),
    ([9.3e18], "int64"), ([1, 2**40], "int32"), ([[1], [128]], "int8"),
    ([1.5, 2**31], "int32"),
])
def test_python_values_that_do_not_fit_raise_as_torch(data, dtype):
    for make in (lambda M: M.tensor(data, dtype=getattr(M, dtype)),
                 lambda M: M.tensor(np.array(data).flat[-1].item(), dtype=getattr(M, dtype)),
                 lambda M: M.full((2,), np.array(data).flat[-1].item(),
                                  dtype=getattr(M, dtype))):
        with pytest.raises(RuntimeError, match=r"value cannot be converted to type \w+ without "
                                               "overflow"):
            make(torch)
        with pytest.raises(RuntimeError, match=f"value cannot be converted to type {dtype} "
                                               "without overflow"):
            make(em)


@pytest.mark.parametrize("data,dtype", [
    ([-1, -255, 255], "uint8"), ([3.7, -3.7, -1.5], "int32"), ([True, False], "int8"),
    ([2, 0, 0.5, NAN], "bool"), ([1e5, 1e300], "float16"), ([2**31 - 1, -2**31], "int32"),
    ([float(2**63)], "int64"),
])
def test_python_values_that_fit_convert_as_torch(data, dtype):
    like_torch(lambda M: M.tensor(data, dtype=getattr(M, dtype)))
    for v in data:
        if dtype != "float16":
            like_torch(lambda M: M.full((3,), v, dtype=getattr(M, dtype)))


def test_arrays_given_whole_follow_numpys_cast_as_torch():
    like_torch(lambda M: M.tensor(np.array([300, -1, 2**40]), dtype=M.uint8))
    like_torch(lambda M: M.tensor(np.array([300.0]), dtype=M.uint8))


def test_fill_checks_its_value_as_torch():
    for make in (lambda M: M.zeros(2, dtype=M.uint8).fill_(300),
                 lambda M: M.zeros(2, dtype=M.int32).fill_(float("nan"))):
        with pytest.raises(RuntimeError, match="without overflow"):
            make(torch)
        with pytest.raises(RuntimeError, match="without overflow"):
            make(em)
    like_torch(lambda M: M.zeros(2, dtype=M.uint8).fill_(-1))


def test_var_warns_as_torch_when_no_degrees_of_freedom_are_left():
    with pytest.warns(UserWarning, match="degrees of freedom is <= 0"):
        em.tensor([1.0, 2.0]).var(correction=2)
    with pytest.warns(UserWarning, match=r"std\(\): degrees of freedom"):
        em.zeros(2, 3).std(1, correction=3)


def test_full_checks_its_value_as_torch():
    for value, dtype in ((1e300, "float32"), (1e5, "float16"), (2**63, "int64")):
        with pytest.raises((RuntimeError, OverflowError)):
            torch.full((2,), value, dtype=getattr(torch, dtype))
        with pytest.raises((RuntimeError, OverflowError), match="overflow|does not fit"):
            em.full((2,), value, dtype=getattr(em, dtype))
    like_torch(lambda M: M.full_like(M.zeros(2, dtype=M.uint8), 255))
    with pytest.raises(RuntimeError, match="uint8 without overflow"):
        em.full_like(em.zeros(2, dtype=em.uint8), 256)


# -- half precision reductions accumulate in float32 -----------------------------------------

@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_reductions_stay_finite_as_torch(size, dtype):
    x = np.full(size * 20, 300.0, np.float32)
    x[1::2] = -300.0

    def fn(M, x):
        h = x.to(getattr(M, dtype))
        return (h.abs().mean(), h.norm(), h.norm(p=1), h.norm(p=3), h.norm(p=0),
                h.norm(p=INF), (h / 2).var(), h.std(), h.reshape(-1, 4).abs().mean(0),
                h.reshape(4, -1).std(1), h.abs().sum(), M.softmax(h, 0)[:3])
    like_torch(fn, x, bits=True)


# -- NaN and inf cast to integers -------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8", "bool"])
def test_nan_and_inf_cast_to_integers_as_eager_and_torch(size, dtype):
    x = np.resize(np.array([NAN, INF, -INF, 1e20, -1e20, 3e9, 2.5, -1.0], np.float32), size)

    def fn(M, x):
        d = getattr(M, dtype)
        return (x.to(d), (x * 2).to(d), M.full((size,), NAN).to(d), M.full((3,), INF).to(d),
                M.full((3,), 3e9).to(d), x.half().to(d), x.double().to(d))
    like_torch(fn, x, bits=True)


# -- softmax and log_softmax ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_at_infinities_and_nan_as_torch(size, name):
    row = np.resize(np.array([1.0, 2.0, -1.0], np.float32), size)
    rows = np.stack([row, row, row, row, row])
    rows[0, 1] = INF
    rows[1, :] = -INF
    rows[2, 0] = NAN
    rows[3, 2] = -INF

    def fn(M, x):
        f = getattr(M, name)
        return (f(x, 1), f(x, 0), f(x[:, :1], 1), f(x[0, 1], 0), f(x[2, 0], -1),
                f(x[4, 0], 0), f(x.half(), 1), f(x[:, :0], 1), f(x[:0], 0))
    like_torch(fn, rows, bits=True)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_softmax_of_integers_as_torch(name, dtype):
    x = np.array([1, 0, 1])
    like_torch(lambda M, x: getattr(M, name)(x.to(getattr(M, dtype))[:0], 0), x)
    like_torch(lambda M, x: getattr(M, name)(x.to(getattr(M, dtype)), 0), x)
    like_torch(lambda M, x: getattr(M, name)(x.to(getattr(M, dtype)), 0, dtype=M.float32), x)


# -- shapes too large to hold -------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda M: M.zeros(2**40, 2**40), lambda M: M.ones(2**62, 4), lambda M: M.rand(2**40, 2**40),
    lambda M: M.full((2**40, 2**40), 1.0), lambda M: M.zeros(0, 2**40, 2**40),
    lambda M: M.arange(2**62, dtype=M.float32), lambda M: M.zeros(1).expand(2**40, 2**40),
    lambda M: M.eye(2**40),
])
@pytest.mark.parametrize("eager", [False, True])
def test_shapes_beyond_64_bits_raise_at_creation_naming_them(make, eager):
    with pytest.raises(RuntimeError, match="overflow"):
        make(torch)
    em.set_eager(eager)
    with pytest.raises(RuntimeError, match=r"overflow.*\[[0-9, ]*1099511627776|overflow.*"
                                           r"4611686018427387904"):
        make(em)


def _machine_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


@pytest.mark.skipif(not 0 < _machine_bytes() < 4 * 10**12,
                    reason="needs a machine that says it has less than 4 TB of memory")
@pytest.mark.parametrize("eager", [False, True])
def test_a_tensor_larger_than_memory_raises_memory_error_before_allocating(eager):
    em.set_eager(eager)
    with pytest.raises(MemoryError, match=r"shape \[1000000000000\].*4000000000000 bytes"):
        em.zeros(10**12).sum()
    with pytest.raises(MemoryError, match=r"\[1000000, 1000000\]"):
        (em.ones(10**6, 1) * em.ones(1, 10**6)).sum()
    assert em.zeros(1).expand(10**12).shape == (10**12,)  # a view allocates nothing


# -- small ones -----------------------------------------------------------------------------------

def test_nonzero_of_a_0d_tensor_as_torch():
    for v in (2.5, 0.0):
        like_torch(lambda M: M.tensor(v).nonzero())
        like_torch(lambda M: M.tensor(v).nonzero(as_tuple=True))


def test_flip_with_a_repeated_dim_raises_as_torch():
    for dims in ((0, 0), (0, -2), (1, 0, 1)):
        like_torch(lambda M, x: x.flip(dims), np.zeros((2, 3)),
                   match="appears multiple times in the list of dims")
    like_torch(lambda M, x: x.flip((1, 0)), np.arange(6.0).reshape(2, 3))


def test_linspace_as_torch():
    like_torch(lambda M: M.linspace(0, 1, 5, dtype=M.bool))  # NotImplementedError
    like_torch(lambda M: M.linspace(0, 300, 5, dtype=M.uint8), match="overflow")
    like_torch(lambda M: M.linspace(-3, 10, 7, dtype=M.int64))
    assert math.isfinite(em.linspace(0, 1, 3).sum().item())


@pytest.mark.parametrize("dtype, value", [("int64", 2.5), ("int8", -2.7), ("bool", 2.5),
                                          ("float16", 3.0), ("int32", True)])
def test_masked_fill_keeps_the_input_dtype(dtype, value):
    import torch
    data = [1, 2, 3]
    t = torch.tensor(data).to(getattr(torch, dtype))
    e = em.tensor(data).to(getattr(em, dtype))
    want = t.masked_fill(t.to(torch.float32) > 1, value)
    got = e.masked_fill(e.to(em.float32) > 1, value)
    assert got.dtype.name == str(want.dtype).removeprefix("torch.")
    assert got.tolist() == want.tolist()
    e.masked_fill_(e.to(em.float32) > 1, value)
    assert e.tolist() == want.tolist()


@pytest.mark.parametrize("n", [1, 4, 20000])
@pytest.mark.parametrize("exponent", [0.5, 2.0, -1.0, 1.0, 3.0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_tensor_of_exponents_is_pow_of_each_element(n, exponent, dtype):
    """As torch: x ** number takes the scalar's path (sqrt for 0.5: -inf ** 0.5 is nan),
    x ** tensor is pow() of each element (inf) even when the tensor is one constant
    (a filled tensor is a constant in lazy mode, a buffer in eager mode)."""
    import torch
    values = [-math.inf, -0.0, 0.0, 1.5, 2.0, math.inf, -2.5, 0.1]
    data = (values * (n // len(values) + 1))[:n]
    t = torch.tensor(data, dtype=getattr(torch, dtype))
    want_tensor = (t ** torch.full_like(t, exponent)).numpy()
    want_number = (t ** exponent).numpy()
    results = []
    for mode in ("lazy", "eager"):
        with em.eager() if mode == "eager" else contextlib.nullcontext():
            x = em.tensor(data, dtype=getattr(em, dtype))
            y = em.zeros(n, dtype=getattr(em, dtype))
            y.fill_(exponent)
            by_tensor = (x ** y).numpy()
            np.testing.assert_allclose(by_tensor, want_tensor, rtol=1e-6, equal_nan=True)
            real = ~np.isnan(want_tensor)
            assert (np.signbit(by_tensor) == np.signbit(want_tensor))[real].all()
            by_number = (x ** exponent).numpy()
            np.testing.assert_allclose(by_number, want_number, rtol=1e-6, equal_nan=True)
            results.append((by_tensor.tobytes(), by_number.tobytes()))
    assert results[0] == results[1]  # lazy and eager agree bit for bit
# -- median: integer dtype, NaN, layout, gradient ---------------------------------------------

def _median_cases(M, x):
    """median() and median(dim) of x as floats, with NaN, and as integers."""
    f = x.reshape(3, -1)
    nan = M.where(f > 1.5, float("nan"), f)
    i = (f * 4).long()
    return (f.median(), nan.median(), i.median(), i.int().median(), nan[:, :1].median(),
            *f.median(1), *nan.median(1), *nan.median(0, keepdim=True), *i.median(1),
            *i.median(0), *f.t().median(0), *nan[:2].median(-1, keepdim=True))


def test_median_keeps_integer_dtypes_and_propagates_nan_as_torch(size):
    x = np.resize(np.array([0.5, -1.0, 2.0, 0.25, 2.0, -1.0, 1.0, 3.0, 0.5], np.float32),
                  size * 3)
    like_torch(_median_cases, x, bits=True)


def test_median_results_are_laid_out_as_torch():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) % 5
    for args in [(0,), (1,), (2,), (-1, True), (1, True), (0, True)]:
        want = torch.from_numpy(x).median(*args)
        got = em.tensor(x).median(*args)
        for g, w in zip(got, want):
            assert g.stride() == w.stride(), (args, g.stride(), w.stride())
            assert g.is_contiguous()


@pytest.mark.parametrize("data", [[2.0, 1.0, 2.0, 2.0], [1.0, NAN, NAN, 2.0], [3.0, 1.0, 2.0]])
def test_median_gradient_as_torch(data):
    def grads(M):
        x = M.tensor(data, requires_grad=True)
        y = M.tensor([data, data[::-1]], requires_grad=True)
        (x.median() * 3 + y.median(1).values.sum() + y.median(0).values.sum()).backward()
        return x.grad, y.grad
    for got, want in zip(grads(em), grads(torch)):
        assert_same(got, want)


def test_median_edge_cases_as_torch():
    like_torch(lambda M, x: (x[:0].median(), x[:0].long().median(), *x[0].median(0),
                             *x.reshape(2, -1)[:, :0].median(0)), np.ones(4, np.float32))
    like_torch(lambda M, x: x.reshape(2, -1).median(1, keepdim=True)[0][:0],
               np.ones(4, np.float32))
    like_torch(lambda M, x: x.bool().median(), np.ones(4, np.float32))
    like_torch(lambda M, x: x.reshape(2, -1)[:, :0].median(1), np.ones(4, np.float32),
               match="non-zero size")


# -- exactly torch's values: exp2, signed zeros ------------------------------------------------

def _as_f64(t) -> np.ndarray:
    """The values of an ember or torch tensor as float64 (bfloat16 through float32)."""
    if isinstance(t, em.Tensor):
        return (t.float() if t.dtype is em.bfloat16 else t).numpy().astype(np.float64)
    return (t.float() if t.dtype is torch.bfloat16 else t).numpy().astype(np.float64)


def exactly_torch(fn, *arrays):
    """`like_torch`, and each value bit for bit torch's (signed zeros included)."""
    like_torch(fn, *arrays, bits=True)
    _, want = _torch(fn, arrays)
    for mode in MODES:
        _, got = _run(fn, arrays, mode)
        for i, (e, t) in enumerate(zip(got, want)):
            e, t = _as_f64(e), _as_f64(t)
            np.testing.assert_array_equal(e, t, err_msg=f"{mode} output {i}")
            same = (np.signbit(e) == np.signbit(t)) | np.isnan(t)  # NaN's sign is noise
            assert same.all(), (mode, i, e[~same], t[~same])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "int64",
                                   "int32"])
def test_exp2_is_exact_at_integers_as_torch(size, dtype):
    x = np.resize(np.array([3, 10, -2, 0, 1, -1, 5, 7, -3, 2]), size)

    def fn(M, x):
        v = x.to(getattr(M, dtype))
        return M.exp2(v), v.exp2().long(), M.exp2(v * 2) == 2 ** (x * 2).to(M.float64)
    exactly_torch(fn, x)


def test_exp2_gradient_as_torch():
    def grad(M):
        x = M.tensor([3.0, -1.0, 0.5], dtype=M.float64, requires_grad=True)
        M.exp2(x).sum().backward()
        return x.grad
    np.testing.assert_array_equal(grad(em).numpy(), grad(torch).numpy())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_remainder_of_signed_zeros_as_torch(size, dtype):
    # NOTE: torch's float % is fmod's, moved by the divisor: a zero result keeps the
    # dividend's sign (NumPy's takes the divisor's)
    a = np.resize(np.array([-0.0, 0.0, -3.0, 3.0, -3.0, 3.0, -1.0, 2.5, INF, NAN, 1e-20]),
                  size)
    d = np.resize(np.array([1.0, -1.0, 3.0, -3.0, -3.0, 3.0, 1.0, -0.5, 2.0, 1.0, -1.0]), size)

    def fn(M, a, d):
        a, d = a.to(getattr(M, dtype)), d.to(getattr(M, dtype))
        r = a % d
        return r, 1 / r, a % -3.0, 1 / (a % 2), 5.0 % d, a // d, 3 // (a * 0)
    exactly_torch(fn, a, d)


def test_float16_remainder_then_div_as_torch():
    def fn(M, a, d):
        v = a.half()
        r = v % d.half()
        v.div_(r)
        return v, r
    exactly_torch(fn, np.array([-2.0, 2.0, 3.0, -0.5]), np.array([-1.0, 1.0, -1.5, 0.25]))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_cumsum_starts_from_positive_zero_as_torch(size, dtype):
    x = np.resize(np.array([-0.0, -0.0, 1.0, -1.0, -0.0]), size)

    def fn(M, x):
        v = x.to(getattr(M, dtype))
        return v.cumsum(0), 1 / v.cumsum(0), 1 / (v * 0).cumsum(0), v.reshape(-1, 1).cumsum(1)
    exactly_torch(fn, x)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_relu_keeps_negative_zero_as_torch(size, dtype):
    x = np.resize(np.array([-0.0, 0.0, -1.0, 2.0, NAN, -INF]), size)

    def fn(M, x):
        v = x.to(getattr(M, dtype))
        w = v.clone()
        w.relu_()
        return v.relu(), 1 / v.relu(), M.relu(v), w, 1 / w
    exactly_torch(fn, x)


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_gradient_at_zero_stays_zero(inplace):
    def grad(M):
        x = M.tensor([-0.0, 0.0, -1.0, 2.0, NAN], requires_grad=True)
        y = x * 1
        y = y.relu_() if inplace else y.relu()
        (y.sqrt() * M.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum().backward()
        return x.grad
    np.testing.assert_array_equal(grad(em).numpy(), grad(torch).numpy())


def test_rsqrt_and_floor_division_by_signed_zeros_as_torch(size):
    x = np.resize(np.array([-0.0, 0.0, 4.0, -INF, INF]), size)
    exactly_torch(lambda M, x: (M.rsqrt(x), x.rsqrt(), 3 // x, -3 // x, x.double().rsqrt(),
                                x.half().rsqrt(), 3 // x.half()), x)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_sums_start_from_positive_zero_as_torch(size, dtype):
    # NOTE: torch's sums start from +0.0 (a sum of -0.0 is +0.0) whatever the layout and
    # even when there is nothing to add (a size-1 dim, a 0-d tensor); max and prod keep -0.0
    x = np.resize(np.array([-0.0]), size)

    def fn(M, x):
        v = x.to(getattr(M, dtype))
        c = v.reshape(2, -1)
        return (v.sum(), v.mean(), c.sum(0), c.t().sum(0, keepdim=True), c[:1].sum(0),
                c[:, :1].mean(1), v[0].sum(), v[0].mean(), c.nansum(0), c[:1].nanmean(0),
                c.amax(0), c[:1].prod(0), 1 / v[0].sum(), c.sum(1, dtype=M.float64))
    exactly_torch(fn, x)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_products_of_signed_zeros_in_matmul_as_torch(dtype):
    # NOTE: torch's mm with an inner size of 1 keeps the sign of a zero product (BLAS
    # writes the product); every longer or batched product is a sum from +0.0
    a = np.array([[0.0], [-0.0], [3.0]])
    w = np.array([[-0.5, 0.25, 0.0]])

    def fn(M, a, w):
        a, w = a.to(getattr(M, dtype)), w.to(getattr(M, dtype))
        return (a @ w, M.mm(a, w), 1 / (a @ w), a.expand(2, 3, 1) @ w.expand(2, 1, 3),
                a[:2].t() @ w[:, :2].t(), a[0] @ w, a @ w[0, :1])
    exactly_torch(fn, a, w)
@pytest.mark.parametrize("case", ["bool, int64", "int64, float16 (2-d)", "float64, int32",
                                  "bool, bool", "stack"])
def test_cat_promotes_over_empty_inputs_as_torch(case):
    """An empty 1-d input is skipped for the shapes, never for the result's dtype."""
    fns = {
        "bool, int64": lambda M: M.cat([M.zeros(0, dtype=M.int64).isnan(),
                                        M.zeros(0, dtype=M.int64)]),
        "int64, float16 (2-d)": lambda M: M.cat([M.ones((2, 3), dtype=M.int64),
                                                 M.zeros(0, dtype=M.float16)], 1),
        "float64, int32": lambda M: M.cat([M.zeros(0, dtype=M.float64),
                                           M.arange(3, dtype=M.int32)]),
        "bool, bool": lambda M: M.cat([M.zeros(0, dtype=M.bool), M.ones(2, dtype=M.bool)]),
        "stack": lambda M: M.stack([M.zeros(0, dtype=M.float64), M.zeros(0, dtype=M.int32)]),
    }
    like_torch(fns[case])


def test_index_select_checks_and_scalars_as_torch():
    like_torch(lambda M: M.tensor(5.0).index_select(0, M.tensor([0])))
    like_torch(lambda M: M.tensor(5.0).index_select(0, M.tensor(0)))
    like_torch(lambda M: M.tensor(5.0).index_select(0, M.tensor([0, 0])), match="only 1 value")
    like_torch(lambda M: M.arange(4.0).index_select(0, M.tensor([True, False, True, False])),
               match="Expected dtype int32 or int64")
    like_torch(lambda M, x: x.permute(1, 0).index_select(1, M.tensor([1, 0])),
               np.arange(6.0).reshape(2, 3))


def test_median_of_an_empty_slice_follows_requires_grad():
    import torch
    for M in (torch, em):
        a, c = M.tensor([-0.5], requires_grad=True), M.tensor([1.0], requires_grad=True)
        values = M.stack([a, c], 0)[:, 1:3].median(0)[0]
        assert values.requires_grad and tuple(values.shape) == (0,)
