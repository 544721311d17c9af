"""Indexing and assignment against NumPy and torch.

Each index is written once as `lambda T: ...`, where T builds an index tensor in the
framework at hand (`em.tensor`, `torch.tensor` or `np.array`), so the same index runs
on all three. Basic indices must give views (checked against torch's strides, offsets
and shared memory); advanced ones gather into new storage. `t[idx] = v` is compared
with NumPy's and torch's assignment for scalars, 0-d tensors, broadcast values and
values of another dtype, and in-place writes through views with torch's and NumPy's.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check, torch

import ember as em

X = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) * 0.5 - 10


def _T(M):
    """The index-tensor constructor of framework M (None: NumPy)."""
    if M is None:
        return np.array
    return M.tensor


BASIC = {
    "int": lambda T: 1,
    "neg-int": lambda T: -1,
    "ints": lambda T: (0, 2),
    "all-ints": lambda T: (-1, -2, -3),
    "slice": lambda T: slice(1, 3),
    "step": lambda T: slice(None, None, 2),
    "start-step": lambda T: (slice(None), slice(1, None, 3)),
    "neg-start": lambda T: slice(-3, None),
    "neg-stop": lambda T: (slice(None), slice(None, -1)),
    "past-end": lambda T: slice(5, None),
    "clamped": lambda T: slice(-10, 20),
    "empty": lambda T: (slice(None), slice(3, 1)),
    "ellipsis": lambda T: (Ellipsis, 1),
    "ellipsis-first": lambda T: (1, Ellipsis),
    "ellipsis-mid": lambda T: (0, Ellipsis, slice(None, None, 2)),
    "ellipsis-only": lambda T: Ellipsis,
    "none": lambda T: None,
    "none-int": lambda T: (None, 1),
    "none-mid": lambda T: (slice(None), None, 2),
    "ellipsis-none": lambda T: (Ellipsis, None),
    "none-ellipsis-none": lambda T: (None, Ellipsis, None, 0),
    "int-step-int": lambda T: (2, slice(None, None, 2), -1),
    "empty-tuple": lambda T: (),
}

ADVANCED = {
    "tensor": lambda T: T([0, 2, -1]),
    "tensor-2d": lambda T: T([[1, 0], [3, -2]]),
    "tensor-dim1": lambda T: (slice(None), T([4, 0, 4])),
    "two-adjacent": lambda T: (T([0, 1, 3]), T([2, 2, 0])),
    "two-broadcast": lambda T: (T([[0], [3]]), T([1, 2, 4])),
    "non-adjacent": lambda T: (T([0, 2, -1]), slice(None), T([1, 5, 0])),
    "non-adjacent-int": lambda T: (T([0, 3]), 2, T([1, 5])),
    "int-then-tensor": lambda T: (1, slice(None), T([0, 5])),
    "slice-then-tensor": lambda T: (slice(1, None), T([0, 4])),
    "step-tensor-step": lambda T: (slice(None, None, 2), T([1, 3]), slice(None, None, 3)),
    "ellipsis-tensor": lambda T: (Ellipsis, T([0, -1])),
    "none-tensor": lambda T: (None, T([0, 1])),
    "tensor-none": lambda T: (T([0, 1]), None, slice(None)),
    "zero-d-tensor": lambda T: T(2),
    "empty-tensor": lambda T: T(np.zeros(0, np.int64)),
    "list": lambda T: [0, 3],
    "list-of-lists": lambda T: ([0, 1], [2, 3]),
    "mask-dim0": lambda T: T([True, False, True, True]),
    "mask-2d": lambda T: T(X[:, :, 0] > -5),
    "mask-full": lambda T: T(X > 0),
    "mask-dim1": lambda T: (slice(None), T([False, True, False, True, True])),
    "mask-and-int": lambda T: (T([True, False, True, False]), 3),
    "mask-and-tensor": lambda T: (T([True, False, True, False]), T([0, 4])),
    "true": lambda T: True,
    "false": lambda T: False,
    "int-true": lambda T: (0, True),
    "neg-tensor-wrap": lambda T: (T([-4, -1]), T([-5, 4])),
}

INDEX_DTYPES = ["int64", "int32", "uint8-mask"]


def _index(spec, M):
    return spec(_T(M))


@pytest.mark.parametrize("name", list(BASIC))
def test_basic_indexing_gives_views(name):
    spec = BASIC[name]
    check(lambda M, x: x[_index(spec, M)], X, np_fn=lambda x: x[spec(np.array)], view=True)


# NumPy treats an int next to an index tensor as one more advanced index; torch (and
# ember) apply the int first, as a select.
NUMPY_DIFFERS = {"int-then-tensor": lambda x: x[1][:, [0, 5]]}


@pytest.mark.parametrize("name", list(ADVANCED))
def test_advanced_indexing_gathers(name):
    spec = ADVANCED[name]
    # NOTE: torch reads a 0-d integer index tensor as an int (a view); ember gathers a copy,
    # so as not to have to compute the index while building the graph.
    out = check(lambda M, x: x[_index(spec, M)], X,
                np_fn=NUMPY_DIFFERS.get(name, lambda x: x[spec(np.array)]),
                view=name != "zero-d-tensor")
    assert out._storage is not em.tensor(X)._storage


@pytest.mark.parametrize("dtype", ["int32", "int16", "int8"])
def test_index_tensors_of_other_integer_dtypes(dtype):
    """int32 as torch; ember also takes int16/int8 (torch refuses them), as NumPy does."""
    idx = np.array([0, 3, 1], dtype=dtype)
    check(lambda M, x: x[:, M.tensor(idx)], X, np_fn=lambda x: x[:, idx],
          with_torch=dtype == "int32")


def test_index_tensor_computed_lazily():
    x = em.tensor(X)
    idx = (em.arange(3) * 2 - 1)  # [-1, 1, 3], never realised before indexing
    np.testing.assert_array_equal(x[idx].numpy(), X[[-1, 1, 3]])


def test_mask_computed_lazily_and_selecting_nothing():
    x = em.tensor(X)
    assert x[x > 1e9].shape == (0,)
    np.testing.assert_array_equal(x[x[:, :, 0] > 0].numpy(), X[X[:, :, 0] > 0])


def test_indexing_a_zero_dim_tensor():
    s = em.tensor(3.5)
    assert s[()].item() == 3.5 and s[...].shape == () and s[None].shape == (1,)
    assert s[True].shape == (1,) and s[False].shape == (0,)


# ---------------------------------------------------------------- assignment

VALUES = {
    "scalar": lambda M, shape: 7.5,
    "int-scalar": lambda M, shape: -3,
    "bool-scalar": lambda M, shape: True,
    "0d": lambda M, shape: np.asarray(2.25, np.float32) if M is None else M.tensor(2.25),
    "full": lambda M, shape: _arange(M, shape),
    "row": lambda M, shape: _arange(M, shape[-1:]),
    "int-tensor": lambda M, shape: _arange(M, shape[-1:], int),
}


def _arange(M, shape, kind=float):
    n = int(np.prod(shape))
    a = (np.arange(n) * 3 - 5).reshape(shape).astype(np.float32 if kind is float else np.int64)
    if M is None:
        return a
    return M.tensor(a)


def _setitem(x, idx, value):
    x[idx] = value
    return x


SET_INDICES = {k: BASIC[k] for k in ("int", "ints", "step", "start-step", "ellipsis",
                                     "none-int", "past-end", "empty-tuple", "int-step-int")}
SET_INDICES.update({k: ADVANCED[k] for k in (
    "tensor", "tensor-dim1", "two-broadcast", "non-adjacent", "non-adjacent-int",
    "slice-then-tensor", "step-tensor-step", "ellipsis-tensor", "mask-dim0", "mask-2d",
    "mask-full", "mask-dim1", "mask-and-int", "zero-d-tensor", "list", "neg-tensor-wrap",
    "true", "empty-tensor")})


@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize("name", list(SET_INDICES))
def test_setitem(name, value):
    spec, make = SET_INDICES[name], VALUES[value]
    shape = X[spec(np.array)].shape
    if value in ("row", "int-tensor") and not shape:
        pytest.skip("no last dim to broadcast along")

    def fn(M, x):
        return _setitem(x, _index(spec, M), make(M, shape))
    # NOTE: torch's index_put_ refuses a value of another dtype; ember casts it, as NumPy
    advanced = name in ADVANCED and value == "int-tensor"
    check(fn, X, np_fn=lambda x: _setitem(x, spec(np.array), make(None, shape)),
          with_torch=not advanced)


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool", "float16"])
def test_setitem_casts_to_the_target_dtype(dtype):
    a = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    for value in (2.7, -1.2, True, 5):
        if dtype == "uint8" and value == -1.2:
            continue  # out of range: undefined in C, torch and NumPy differ
        check(lambda M, x, v=value: _setitem(x, (slice(None), 1), v), a,
              np_fn=lambda x, v=value: _setitem(x, (slice(None), 1),
                                                np.array(v).astype(x.dtype)))
        check(lambda M, x, v=value: _setitem(x, M.tensor([0, 2]), M.tensor(v)), a,
              np_fn=lambda x, v=value: _setitem(x, [0, 2], np.array(v).astype(x.dtype)),
              with_torch=False)  # torch's index_put_ wants the value in x's dtype


def test_setitem_value_from_another_view_of_the_same_storage():
    """`x[0] = x[1]` reads x[1] before the write, as torch and NumPy do."""
    check(lambda M, x: _setitem(x, 0, x[1]), X, np_fn=lambda x: _setitem(x, 0, x[1]))
    check(lambda M, x: _setitem(x, slice(1, None), x[:-1].clone()), X,
          np_fn=lambda x: _setitem(x, slice(1, None), x[:-1].copy()))


def test_setitem_through_a_view_reaches_the_base():
    def fn(M, x):
        v = x.transpose(0, 2)[1:, ::2]
        v[0] = -1.0
        v[:, _T(M)([0, 2])] = 9.0
        return x, v
    check(fn, X, np_fn=_np_setitem_view)


def _np_setitem_view(x):
    v = x.transpose(2, 1, 0)[1:, ::2]
    v[0] = -1.0
    v[:, [0, 2]] = 9.0
    return x, v


# ---------------------------------------------------------------- in-place through views

INPLACE = {
    "add_": (lambda M, v: v.add_(1.5), lambda v: v.__iadd__(1.5)),
    "sub_": (lambda M, v: v.sub_(M.ones(v.shape[-1:])), lambda v: v.__isub__(1.0)),
    "mul_": (lambda M, v: v.mul_(-2), lambda v: v.__imul__(-2)),
    "div_": (lambda M, v: v.div_(4), lambda v: v.__itruediv__(4)),
    "pow_": (lambda M, v: v.pow_(2), lambda v: v.__ipow__(2)),
    "clamp_": (lambda M, v: v.clamp_(-3, 3), lambda v: np.clip(v, -3, 3, out=v)),
    "neg_": (lambda M, v: v.neg_(), lambda v: np.negative(v, out=v)),
    "abs_": (lambda M, v: v.abs_(), lambda v: np.abs(v, out=v)),
    "zero_": (lambda M, v: v.zero_(), lambda v: v.fill(0)),
    "fill_": (lambda M, v: v.fill_(3.25), lambda v: v.fill(3.25)),
    "copy_": (lambda M, v: v.copy_(M.arange(v.shape[-1]).float()),
              lambda v: np.copyto(v, np.arange(v.shape[-1]))),
    "+=": (lambda M, v: v.__iadd__(M.ones(v.shape)), lambda v: v.__iadd__(1.0)),
    "*=": (lambda M, v: v.__imul__(3), lambda v: v.__imul__(3)),
}

VIEWS = {
    "row": (lambda x: x[1], lambda x: x[1]),
    "column": (lambda x: x[:, 2], lambda x: x[:, 2]),
    "step": (lambda x: x[::2, 1::2], lambda x: x[::2, 1::2]),
    "transposed": (lambda x: x.transpose(0, 2), lambda x: x.transpose(2, 1, 0)),
    "permuted-slice": (lambda x: x.permute(1, 2, 0)[1:3], lambda x: x.transpose(1, 2, 0)[1:3]),
    "view": (lambda x: x.view(20, 6)[3:7], lambda x: x.reshape(20, 6)[3:7]),
    "diagonal": (lambda x: x.diagonal(0, 1, 2), lambda x: np.lib.stride_tricks.as_strided(
        x, (4, 5), (x.strides[0], x.strides[1] + x.strides[2]))),  # a writable diagonal
    "unsqueezed": (lambda x: x[2].unsqueeze(0), lambda x: x[2][None]),
    "narrow": (lambda x: x.narrow(2, 1, 3), lambda x: x[:, :, 1:4]),
    "split": (lambda x: x.split(2, 1)[1], lambda x: x[:, 2:4]),
    "chunk": (lambda x: x.chunk(2, 0)[1], lambda x: x[2:]),
    "select-select": (lambda x: x.select(2, -1).select(0, 0), lambda x: x[0, :, -1]),
    "flatten-view": (lambda x: x[1].flatten(), lambda x: x[1].reshape(-1)),
    "squeeze": (lambda x: x[:, 1:2].squeeze(1), lambda x: x[:, 1]),
}


@pytest.mark.parametrize("op", list(INPLACE))
@pytest.mark.parametrize("view", list(VIEWS))
def test_inplace_through_views_visible_in_base_and_other_views(view, op):
    make, np_make = VIEWS[view]
    fn, np_fn = INPLACE[op]

    def run(M, x):
        v = make(x)
        others = (x[1], x.transpose(0, 1), x[:, :, ::3])
        out = fn(M, v)
        assert out is v
        return (x, v) + others

    def np_run(x):
        v = np_make(x)
        np_fn(v)
        return (x, v, x[1], x.transpose(1, 0, 2), x[:, :, ::3])
    check(run, X.copy(), np_fn=np_run, rtol=1e-6)


def test_inplace_on_int_tensor_with_float_result_is_refused_and_leaves_it():
    x = em.arange(6)
    v = x[1:4]
    version = x._storage.version
    with pytest.raises(RuntimeError, match="result type Float.* can't be cast to the desired "
                                           "output type Int64"):
        v.add_(0.5)
    assert x.tolist() == [0, 1, 2, 3, 4, 5] and x._storage.version == version


def test_inplace_int_by_int_and_bool_stay_in_dtype():
    check(lambda M, x: x[1:].mul_(3), np.arange(6, dtype=np.int32),
          np_fn=lambda x: x[1:].__imul__(3), dtype="int32")
    check(lambda M, x: x.logical_not_(), np.array([True, False]),
          np_fn=np.logical_not, dtype="bool")


# ---------------------------------------------------------------- gathers


def test_gather_and_index_select_and_masked_fill():
    idx = np.array([[[0], [2]], [[1], [1]], [[3], [0]], [[2], [2]]])
    check(lambda M, x, i: M.gather(x, 1, i), X, idx,
          np_fn=lambda x, i: np.take_along_axis(x[:, :, :1], i, 1))
    check(lambda M, x, i: x.gather(-1, i), X, np.array([[[5, 0]]] * 4),
          np_fn=lambda x, i: np.take_along_axis(x[:, :1, :], i, 2))
    check(lambda M, x, i: M.index_select(x, 1, i), X, np.array([4, 0, 0]),
          np_fn=lambda x, i: x[:, i])
    check(lambda M, x: M.masked_fill(x, x > 0, -1.0), X, np_fn=lambda x: np.where(x > 0, -1, x))
    check(lambda M, x: x.masked_fill_(x < -5, 0.0), X, np_fn=lambda x: np.where(x < -5, 0, x))
    check(lambda M, x: M.nonzero(x > 5), X, np_fn=lambda x: np.argwhere(x > 5))


@pytest.mark.skipif(torch is None, reason="torch is not installed")
def test_index_errors_match_torch():
    from helpers import to_torch
    x, tx = em.tensor(X), to_torch(X)
    for idx in ((0, 0, 0, 0), 4, (slice(None), -6), (slice(None), slice(None, None, -1))):
        with pytest.raises(Exception) as e_info:
            x[idx]
        with pytest.raises(Exception) as t_info:
            tx[idx]
        assert type(e_info.value) is type(t_info.value), (idx, e_info.value, t_info.value)


def test_copy_from_a_realised_1d_tensor():
    x = em.tensor([1.0, 2.0])
    y = em.zeros(2)
    y.copy_(x)
    assert y.tolist() == [1.0, 2.0]
    z = em.zeros(2).realize()
    z[:] = x
    assert z.tolist() == [1.0, 2.0]


def test_mask_assignment_of_a_number_builds_one_graph_per_step():
    """`g[h < 0] = 0` (the classic hand-written ReLU backward) is a masked fill: no
    realisation of the mask and no data-dependent shape, so a loop hits the cache."""
    from ember.runtime import cache
    rng = np.random.default_rng(0)
    misses = []
    for _ in range(4):
        h = em.tensor(rng.standard_normal((8, 5)).astype(np.float32))
        g = em.ones(8, 5) * 3
        g[h < 0] = 0
        expected = np.where(h.numpy() < 0, 0, 3)
        np.testing.assert_array_equal(g.numpy(), expected)
        misses.append(cache.stats().misses)
    assert misses[3] == misses[2] == misses[1]  # the same graph as the step before


@pytest.mark.parametrize("value", [1.0, "tensor"])
def test_mask_assignment_into_an_expanded_view_writes_the_base(value):
    """`x[mask] = v` where x's elements alias (an expanded view) writes the memory each
    selected element reads, with PyTorch's deprecation warning (it recursed before)."""
    mask = [[True, False, False], [False, False, True], [False, False, False]]
    pairs = []
    for lib in (em, torch):
        base = lib.zeros(3)
        x = base.expand(3, 3)
        v = 7.0 if value == 1.0 else lib.tensor(7.0)
        with pytest.warns(UserWarning, match="expanded tensors is deprecated"):
            x[lib.tensor(mask)] = v
        pairs.append(base)
    np.testing.assert_array_equal(pairs[0].numpy(), pairs[1].numpy())
