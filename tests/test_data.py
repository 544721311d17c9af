"""`as_array` and `from_numpy_shared` against `torch.tensor` and `torch.from_numpy`.

Tests that compare with torch take the `torch` fixture and are skipped where torch is
not installed; the rest (ember's own choices, and every error message) always run.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ember.ir import dtypes as D
from ember.tracer.data import as_array, from_numpy_shared

NAN, INF = float("nan"), float("inf")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FEW = settings(max_examples=60, deadline=None)  # keeps the file under a few seconds


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def assert_like_torch(torch, data, dtype: D.DType | None = None) -> None:
    """`as_array(data, dtype)` has torch.tensor's dtype, shape and values."""
    # NOTE: torch.tensor refuses negative strides, which as_array copies away.
    source = data.copy() if isinstance(data, np.ndarray) else data
    expected = torch.tensor(source, dtype=None if dtype is None else getattr(torch, dtype.name))
    arr, got = as_array(data, dtype)
    assert got.name == str(expected.dtype).removeprefix("torch.")
    assert arr.dtype == got.np and arr.flags.c_contiguous
    assert arr.shape == tuple(expected.shape)
    ref = expected.float().numpy() if got is D.bfloat16 else expected.numpy()
    np.testing.assert_array_equal(arr, ref)


def nest(flat: list, shape: tuple[int, ...]):
    """`flat` as nested lists of `shape`."""
    if not shape:
        return flat[0]
    step = math.prod(shape[1:])
    return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


# ---------------------------------------------------------------- Python data


@st.composite
def nested_lists(draw, elements: st.SearchStrategy):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
    flat = draw(st.lists(elements, min_size=math.prod(shape), max_size=math.prod(shape)))
    return nest(flat, shape)


NATIVE_SCALAR_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8,
                       np.float16, np.float32, np.float64]
PY_NUMBERS = {
    "bool": st.booleans(),
    "int": st.integers(INT64_MIN, INT64_MAX),
    "float": st.floats(allow_nan=True, allow_infinity=True),
}


@FEW
@given(kinds=st.sets(st.sampled_from(sorted(PY_NUMBERS)), min_size=1), data=st.data())
def test_nested_lists_infer_like_torch(torch, kinds, data):
    elements = st.one_of(*(PY_NUMBERS[k] for k in sorted(kinds)))
    assert_like_torch(torch, data.draw(nested_lists(elements)))


@FEW
@given(dtype=st.sampled_from(D.ALL_DTYPES), data=st.data())
def test_nested_lists_cast_like_torch(torch, dtype, data):
    # Values every dtype holds, so torch's overflow checks stay quiet.
    elements = st.one_of(st.booleans(), st.integers(0, 100), st.floats(0, 100))
    if dtype.is_floating_point or dtype.is_bool:
        elements = st.one_of(elements, st.sampled_from([NAN, INF, -INF, -2.5]))
    assert_like_torch(torch, data.draw(nested_lists(elements)), dtype)


NUMPY_SCALARS = st.one_of(*(
    hnp.from_dtype(np.dtype(t), allow_nan=True).map(t) if np.dtype(t).kind == "f"
    else hnp.from_dtype(np.dtype(t)).map(t) for t in NATIVE_SCALAR_TYPES))


@FEW
@given(data=st.data())
def test_lists_mixing_numpy_scalars_infer_like_torch(torch, data):
    # np.bool_ is left out: torch refuses it next to ints (ember takes it).
    elements = st.one_of(st.integers(-100, 100), st.floats(-100, 100), NUMPY_SCALARS)
    assert_like_torch(torch, data.draw(nested_lists(elements)))


@pytest.mark.parametrize("data", [
    3, True, 2.5, -0.0, NAN, [], [[]], [[], []], (), (1, 2), range(4), [(1, 2), [3, 4]],
    [True, 2], [True, 2.5], [[True, False]], [NAN, INF, -INF, 1.0],
    [2**63, 1.5], [1.5, 2**70], [INT64_MIN, INT64_MAX],
])
def test_python_data_like_torch(torch, data):
    assert_like_torch(torch, data)


@pytest.mark.parametrize("data", [
    np.float64(1.5), np.float32(1.5), np.float16(1.5), np.int16(3), np.uint8(7), np.bool_(True),
    [np.float64(1.0), 2.0], [np.float16(1.0), 2.0], [np.int32(1), 2],
    [np.int32(1), np.int32(2)], [np.float64(1), np.float32(2)],
    [np.array([1.0, 2.0], dtype=np.float16), [3, 4]], [np.array([1, 2], dtype=np.int32), [3, 4]],
    [[1.5, np.float64(2.5)], [np.float32(3), 4]],
])
@pytest.mark.filterwarnings("ignore:Creating a tensor from a list of numpy.ndarrays")
def test_numpy_scalars_and_arrays_in_lists_like_torch(torch, data):
    assert_like_torch(torch, data)


@pytest.mark.parametrize(("data", "dtype"), [
    ([1.7, -1.7, 2.5, -0.5], D.int64), ([1.7, -1.7, 100.9], D.int8), ([0.0, 2.0, -1.0, NAN, 0.5],
                                                                       D.bool_),
    ([0, 3, -1], D.bool_), ([2**63], D.float64), ([2**70], D.bool_), ([2**62 + 1, 1.5], D.int64),
    ([[1, 2], [3, 4]], D.bfloat16), ([1.00390625, 3.14159, 1e30, NAN], D.bfloat16),
    ([1.0, 2.0], D.float16), ([16777217], D.float32), ([True, False], D.float32),
])
def test_explicit_dtype_like_torch(torch, data, dtype):
    assert_like_torch(torch, data, dtype)


def test_out_of_range_python_values_raise_and_arrays_follow_numpys_cast():
    # as torch: Python data is checked ("value cannot be converted to type uint8 without
    # overflow"; -1 wraps into uint8), an array given whole is cast as NumPy casts it
    assert as_array([255, -1], D.uint8)[0].tolist() == [255, 255]
    for data, d in (([300, -1], D.uint8), ([NAN], D.int64), ([1.0, 2**40], D.int32)):
        with pytest.raises(RuntimeError, match=f"converted to type {d.name} without overflow"):
            as_array(data, d)
    assert as_array(np.array([300, -1]), D.uint8)[0].tolist() == [44, 255]
    with np.errstate(invalid="ignore"):
        nan_as_int = np.array([NAN]).astype(np.int64)
    np.testing.assert_array_equal(as_array(np.array([NAN]), D.int64)[0], nan_as_int)
    assert as_array([1e10], D.float16)[0].tolist() == [INF]


def test_ember_keeps_lists_torch_refuses():
    # torch: "len() of unsized object" and "'numpy.bool' object cannot be interpreted..."
    arr, d = as_array([np.array(1.0, dtype=np.float32), 2.0])
    assert d is D.float32 and arr.tolist() == [1.0, 2.0]
    arr, d = as_array([np.bool_(True), 2])
    assert d is D.int64 and arr.tolist() == [1, 2]


def test_empty_and_scalar_shapes():
    assert as_array([])[0].shape == (0,) and as_array([])[1] is D.default_float()
    assert as_array([[], []])[0].shape == (2, 0)
    assert as_array([], D.int32)[0].dtype == np.int32
    assert as_array(5)[0].shape == () and as_array(5)[1] is D.int64


# ---------------------------------------------------------------- NumPy data


NATIVE_NP = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
             np.float16, np.float32, np.float64]
OTHER_NP = ["uint16", "uint32", "uint64", "longdouble", "datetime64[D]", "datetime64[s]",
            "datetime64[ns]", "timedelta64[ms]", ">i4", ">f8", "<u2"]


def expected_from_numpy(a: np.ndarray) -> tuple[np.ndarray, D.DType]:
    """What the module docstring promises for each NumPy dtype."""
    d = a.dtype.newbyteorder("=")
    if d.kind in "Mm":
        return a.view(np.int64), D.int64
    if d.kind == "u" and d.itemsize > 1:
        return a.astype(np.int64), D.int64
    if d == np.longdouble:
        return a.astype(np.float64), D.float64
    return a.astype(d), D.from_numpy_dtype(d)


@st.composite
def numpy_arrays(draw, dtypes):
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    if dtype == np.longdouble:
        a = draw(hnp.arrays(np.float64, shape)).astype(np.longdouble)
    else:
        a = draw(hnp.arrays(dtype, shape))
    if a.ndim >= 2 and draw(st.booleans()):
        a = a.T
    if a.ndim >= 1 and draw(st.booleans()):
        a = a[::-1]
    return a


@FEW
@given(a=numpy_arrays(NATIVE_NP))
def test_numpy_arrays_like_torch(torch, a):
    assert_like_torch(torch, a)


@FEW
@given(a=numpy_arrays(OTHER_NP))
def test_numpy_dtypes_ember_lacks(a):
    ref, ref_dtype = expected_from_numpy(a)
    if a.dtype == np.uint64 and a.size and a.max() > INT64_MAX:
        with pytest.raises(TypeError, match=r"uint64 array holding \d+, which does not fit"):
            as_array(a)
        return
    arr, d = as_array(a)
    assert d is ref_dtype and arr.dtype == d.np and arr.flags.c_contiguous
    np.testing.assert_array_equal(arr, ref)


@FEW
@given(a=numpy_arrays(NATIVE_NP + OTHER_NP), dtype=st.sampled_from(D.ALL_DTYPES))
def test_numpy_arrays_cast_like_numpy(a, dtype):
    if a.dtype == np.uint64:
        a = np.asarray(a // 2)  # inside int64, and an array (a NumPy scalar is checked)
    source, _ = expected_from_numpy(a)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = source.astype(dtype.np)
    if dtype is D.bfloat16:
        ref = D.round_bf16(ref)
    arr, d = as_array(a, dtype)
    assert d is dtype and arr.dtype == dtype.np and arr.flags.c_contiguous
    np.testing.assert_array_equal(arr, ref)


@FEW
@given(a=hnp.arrays(st.sampled_from(NATIVE_NP), hnp.array_shapes(max_dims=2),
                    elements={"min_value": 0, "max_value": 100}),
       dtype=st.sampled_from(D.ALL_DTYPES))
def test_numpy_arrays_cast_like_torch(torch, a, dtype):
    assert_like_torch(torch, a, dtype)


def test_nan_and_inf_are_kept(torch):
    assert_like_torch(torch, np.array([NAN, INF, -INF, 0.0], dtype=np.float32))
    assert_like_torch(torch, [[NAN, 1.0], [INF, -INF]])
    assert np.isnan(as_array([NAN], D.bfloat16)[0][0])


def test_datetime64_becomes_int64_counts_since_the_epoch():
    days = np.array(["1970-01-02", "2020-01-01", "NaT"], dtype="datetime64[D]")
    arr, d = as_array(days)
    assert d is D.int64 and arr.tolist() == [1, 18262, INT64_MIN]
    seconds = np.array(["1970-01-01T00:01:00"], dtype="datetime64[s]")
    assert as_array(seconds)[0].tolist() == [60]
    assert as_array(np.array([1500, -2], dtype="timedelta64[ms]"))[0].tolist() == [1500, -2]
    assert as_array(days, D.float64)[0][:2].tolist() == [1.0, 18262.0]


def test_unsigned_and_long_double_map_without_loss():
    assert as_array(np.array([65535], dtype=np.uint16))[1] is D.int64
    arr, d = as_array(np.array([2**32 - 1], dtype=np.uint32))
    assert d is D.int64 and arr.tolist() == [2**32 - 1]
    arr, d = as_array(np.array([INT64_MAX], dtype=np.uint64))
    assert d is D.int64 and arr.tolist() == [INT64_MAX]
    arr, d = as_array(np.array([2**64 - 1], dtype=np.uint64), D.float64)
    assert d is D.float64 and arr.tolist() == [2.0**64]
    arr, d = as_array(np.array([1.5], dtype=np.longdouble))
    assert d is D.float64 and arr.tolist() == [1.5]
    arr, d = as_array(np.arange(3, dtype=">i8"))
    assert d is D.int64 and arr.dtype.isnative and arr.tolist() == [0, 1, 2]


class FakeTensor:
    """An array-like that declares an ember dtype, as ember tensors do."""

    def __init__(self, values: list[float], dtype: D.DType) -> None:
        self.values, self.dtype = values, dtype

    def __array__(self, dtype=None, copy=None):
        return np.array(self.values, dtype=np.float32)


def test_array_likes_use_their_declared_ember_dtype():
    arr, d = as_array(FakeTensor([1.0, 2.0], D.bfloat16))
    assert d is D.bfloat16 and arr.dtype == np.float32 and arr.tolist() == [1.0, 2.0]
    arr, d = as_array([FakeTensor([1.0], D.bfloat16), FakeTensor([2.0], D.float16)])
    assert d is D.float32 and arr.shape == (2, 1)


def test_torch_tensors_are_array_likes(torch):
    arr, d = as_array(torch.arange(4, dtype=torch.int16).reshape(2, 2))
    assert d is D.int16 and arr.tolist() == [[0, 1], [2, 3]]


def test_result_never_shares_memory_with_the_input():
    a = np.arange(6.0).reshape(2, 3)
    for data, dtype in [(a, None), (a, D.float64), ([a[0], a[1]], None), (a.T, None)]:
        arr, _ = as_array(data, dtype)
        assert not np.shares_memory(arr, a) and arr.flags.c_contiguous and arr.flags.writeable


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("data", "error", "message"), [
    (["a"], TypeError, r"element at index \[0\] is a str \('a'\); expected a number or bool"),
    ([[1, 2], ["a", 3]], TypeError, r"element at index \[1\]\[0\] is a str \('a'\)"),
    ("abc", TypeError, r"data is a str \('abc'\); expected a number or bool"),
    ([1, b"x"], TypeError, r"element at index \[1\] is a bytes \(b'x'\)"),
    ([1, None], TypeError, r"element at index \[1\] is None; expected a number or bool"),
    (None, TypeError, r"data is None"),
    ([1, 1j], TypeError, r"element at index \[1\] is a complex number \(1j\); complex tensors"),
    ([1, object()], TypeError, r"element at index \[1\] is an object \(<object"),
    ([{}, 1], TypeError, r"element at index \[0\] is a dict"),
    (np.zeros(2, np.complex64), TypeError, r"dtype complex64; complex tensors are not supported"),
    (np.array([1, 2], dtype=object), TypeError,
     r"data is a NumPy array of dtype object; expected a numeric or bool dtype"),
    (np.array(["a"]), TypeError, r"NumPy array of dtype <U1"),
    (np.array([b"a"]), TypeError, r"NumPy array of dtype \|S1"),
    ([np.array(["a"])], TypeError, r"element at index \[0\] is a NumPy array of dtype <U1"),
    (np.array([2**64 - 1], dtype=np.uint64), TypeError,
     r"uint64 array holding 18446744073709551615, which does not fit in int64"),
    ([[1, 2, 3], [4, 5]], ValueError,
     r"expected sequence of length 3 at dim 1 \(got 2\) at index \[1\]"),
    ([[[1, 2], [3, 4]], [[1, 2], [3]]], ValueError,
     r"expected sequence of length 2 at dim 2 \(got 1\) at index \[1\]\[1\]"),
    ([[1, 2], 3], ValueError,
     r"element at index \[1\] is an int, but expected a sequence of length 2 at dim 1"),
    ([1, [2]], ValueError, r"element at index \[1\] is a list, but the elements before it"),
    ([np.zeros(2), np.zeros(3)], ValueError,
     r"expected sequence of length 2 at dim 1 \(got 3\) in the array at index \[1\]"),
    ([np.zeros((2, 2)), np.zeros(2)], ValueError,
     r"element at index \[1\] is an array of shape \(2,\), but the elements before it need"),
    ([1, 2**64], OverflowError,
     r"element at index \[1\] is 18446744073709551616, which does not fit in int64"),
    ([[1], [-(2**63) - 1]], OverflowError, r"element at index \[1\]\[0\] is -9223372036854775809"),
    (2**63, OverflowError, r"data is 9223372036854775808, which does not fit in int64"),
])
def test_errors_say_what_and_where(data, error, message):
    with pytest.raises(error, match=message):
        as_array(data)


def test_big_int_error_also_under_an_integer_dtype():
    with pytest.raises(OverflowError, match=r"index \[0\] is 18446744073709551616"):
        as_array([2**64], D.int32)


# ---------------------------------------------------------------- from_numpy_shared


@pytest.mark.parametrize("np_dtype", NATIVE_NP)
@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")
def test_from_numpy_shares_memory(torch, np_dtype):
    a = np.zeros((3, 4), dtype=np_dtype)
    for view in (a, a[:, ::2], a.T, np.broadcast_to(a[0], (5, 4))):
        shared, d = from_numpy_shared(view)
        assert shared is view and np.shares_memory(shared, a)
        assert d.name == str(torch.from_numpy(view).dtype).removeprefix("torch.")
    shared, _ = from_numpy_shared(a)
    shared[0, 0] = 1
    assert a[0, 0] == 1


def test_from_numpy_refuses_what_it_cannot_share():
    with pytest.raises(ValueError, match=r"At least one stride in the given numpy array is "
                                         r"negative"):
        from_numpy_shared(np.arange(3)[::-1])
    with pytest.raises(ValueError, match=r"not in the machine's byte order"):
        from_numpy_shared(np.arange(3, dtype=">i8"))
    for dtype in ("uint16", "uint64", "datetime64[D]", "complex64", "object", "longdouble"):
        message = f"can't share memory with a NumPy array of dtype {np.dtype(dtype)};"
        with pytest.raises(TypeError, match=re.escape(message)):
            from_numpy_shared(np.zeros(2, dtype=dtype))
    with pytest.raises(TypeError, match=r"expected np.ndarray \(got list\)"):
        from_numpy_shared([1, 2])


# ---------------------------------------------------------------- speed


@pytest.mark.parametrize("shape", [(10**6,), (1000, 1000)])
def test_a_million_python_numbers_convert_fast(shape):
    data = nest([float(i) for i in range(10**6)], shape)
    start = time.perf_counter()
    arr, d = as_array(data)
    assert time.perf_counter() - start < 0.5
    assert arr.shape == shape and d is D.float32
