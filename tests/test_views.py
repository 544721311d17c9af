"""Views, property-based: random chains of view ops against NumPy's views and torch's.

A chain starts from a contiguous base and applies view/reshape/permute/transpose/slice
(with steps)/select/unsqueeze/squeeze/expand/narrow/diagonal/T/flatten/unflatten, each
drawn to fit the current shape. The NumPy twin builds the same view with basic
indexing or `as_strided` (so it stays writable), and torch, when installed, checks
strides, storage offsets and memory sharing. Then a write through the last view
(add_, mul_, fill_, copy_, setitem) must show in the base and in every earlier view,
exactly as the same write does in NumPy.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from helpers import assert_view_like, torch
from hypothesis import given
from hypothesis import strategies as st
from numpy.lib.stride_tricks import as_strided

import ember as em

OVERLAP = "more than one element of the written-to tensor refers to a single memory location"


# ---------------------------------------------------------------- the ops, three ways

def _np_strides(a: np.ndarray) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


def _np_view(a: np.ndarray, shape, strides) -> np.ndarray:
    """A writable NumPy view of a's first element with `shape` and element `strides`."""
    return as_strided(a, tuple(shape), tuple(s * a.itemsize for s in strides))


def _np_reshape(a: np.ndarray, shape, copy: bool) -> np.ndarray:
    if copy:
        return a.reshape(shape).copy()
    v = a.view()
    v.shape = shape  # raises where NumPy would have to copy
    return v


def apply(t, op):
    """Apply `op` to an ember or torch tensor (the same PyTorch call for both)."""
    name, args = op
    if name == "slice":
        d, start, stop, step = args
        return t[(slice(None),) * d + (slice(start, stop, step),)]
    if name == "select":
        return t.select(*args)
    if name == "T":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch deprecates .T on other than 2-D
            return t.T
    if name == "squeeze":
        return t.squeeze() if args is None else t.squeeze(args)
    if name in ("view", "reshape", "expand"):
        return getattr(t, name)(*args)
    return getattr(t, name)(*args)


def apply_np(a: np.ndarray, op, copied: bool) -> np.ndarray:
    """The same view in NumPy (`copied`: ember's reshape had to copy)."""
    name, args = op
    nd = a.ndim
    if name in ("view", "reshape", "flatten", "unflatten"):
        if name == "flatten":
            s, e = (x % max(nd, 1) for x in args)
            shape = a.shape[:s] + (math.prod(a.shape[s:e + 1]),) + a.shape[e + 1:]
        elif name == "unflatten":
            d, sizes = args[0] % nd, args[1]
            shape = a.shape[:d] + tuple(sizes) + a.shape[d + 1:]
        else:
            shape = args
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            shape = tuple(a.size // known if s == -1 else s for s in shape)
        return _np_reshape(a, tuple(shape), copied)
    if name == "permute":
        return a.transpose(args)
    if name == "transpose":
        order = list(range(nd))
        i, j = (x % nd for x in args)
        order[i], order[j] = order[j], order[i]
        return a.transpose(order)
    if name == "T":
        return a.T
    if name == "slice":
        d, start, stop, step = args
        return a[(slice(None),) * d + (slice(start, stop, step),)]
    if name == "narrow":
        d, start, length = args
        return a[(slice(None),) * (d % nd) + (slice(start, start + length),)]
    if name == "select":
        d, i = args
        return a[(slice(None),) * (d % nd) + (i, Ellipsis)]  # `...` keeps a 0-d result a view
    if name == "unsqueeze":
        return np.expand_dims(a, args[0])
    if name == "squeeze":
        if args is None:
            return a.squeeze()
        d = args % max(nd, 1)
        return a.squeeze(d) if nd and a.shape[d] == 1 else a
    if name == "expand":
        lead = len(args) - nd
        strides = [0] * lead + [st_ if s in (-1, a.shape[i]) else 0 for i, (s, st_) in
                                enumerate(zip(args[lead:], _np_strides(a)))]
        shape = [a.shape[i - lead] if s == -1 else s for i, s in enumerate(args)]
        return _np_view(a, shape, strides)
    if name == "diagonal":
        off, d1, d2 = args
        d1, d2 = d1 % nd, d2 % nd
        n1, n2 = a.shape[d1], a.shape[d2]
        length = max(0, min(n1, n2 - off) if off >= 0 else min(n1 + off, n2))
        start = [slice(None)] * nd
        if length:
            start[d2 if off >= 0 else d1] = slice(abs(off), None)
        b = a[tuple(start)]
        keep = [i for i in range(nd) if i not in (d1, d2)]
        st_ = _np_strides(a)
        return _np_view(b, [a.shape[i] for i in keep] + [length],
                        [st_[i] for i in keep] + [st_[d1] + st_[d2]])
    raise AssertionError(name)


def _reshape_targets(shape) -> list[tuple[int, ...]]:
    """Shapes with the same number of elements: merges, splits, flat, with -1."""
    out = [(-1,), (math.prod(shape),)]
    infer = math.prod(shape) > 0  # -1 is ambiguous for an empty tensor
    for i in range(len(shape) - 1):
        out.append(shape[:i] + (shape[i] * shape[i + 1],) + shape[i + 2:])
    for i, s in enumerate(shape):
        for f in (2, 3):
            if s and s % f == 0:
                out.append(shape[:i] + (f, s // f) + shape[i + 1:])
                if infer:
                    out.append(shape[:i] + (f, -1) + shape[i + 1:])
    out.append(shape + (1,))
    out.append((1,) + shape)
    return out


@st.composite
def view_op(draw, shape):
    """One view op that fits `shape`."""
    nd = len(shape)
    names = ["view", "reshape", "unsqueeze", "squeeze", "expand", "flatten"]
    if nd:
        names += ["permute", "transpose", "slice", "narrow", "unflatten"]
        if any(shape):
            names.append("select")
    if nd >= 2:
        names.append("diagonal")
    if nd <= 2:
        names.append("T")
    name = draw(st.sampled_from(names))
    dim = st.integers(-nd, nd - 1) if nd else st.just(0)
    if name in ("view", "reshape"):
        return name, draw(st.sampled_from(_reshape_targets(shape)))
    if name == "flatten":
        if not nd:
            return name, (0, -1)
        a, c = sorted((draw(dim) % nd, draw(dim) % nd))
        return name, (a, c - nd if draw(st.booleans()) else c)
    if name == "unflatten":
        d = draw(dim)
        s = shape[d]
        splits = [(s,), (1, s), (s, 1)] + [(f, s // f) for f in (2, 3) if s and not s % f]
        if math.prod(shape):
            splits.append((-1, 1))
        return name, (d, draw(st.sampled_from(splits)))
    if name == "permute":
        return name, tuple(draw(st.permutations(range(nd))))
    if name == "transpose":
        return name, (draw(dim), draw(dim))
    if name == "T":
        return name, ()
    if name == "slice":
        d = draw(st.integers(0, nd - 1))
        bound = st.none() | st.integers(-shape[d] - 1, shape[d] + 1)
        return name, (d, draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3])))
    if name == "narrow":
        d = draw(dim)
        start = draw(st.integers(0, shape[d]))
        return name, (d, start, draw(st.integers(0, shape[d] - start)))
    if name == "select":
        d = draw(st.sampled_from([i for i in range(nd) if shape[i]]))
        return name, (d - nd if draw(st.booleans()) else d,
                      draw(st.integers(-shape[d], shape[d] - 1)))
    if name == "unsqueeze":
        return name, (draw(st.integers(-nd - 1, nd)),)
    if name == "squeeze":
        return name, draw(st.none() | dim) if nd else None
    if name == "expand":
        lead = draw(st.integers(0 if nd else 1, 1))
        sizes = [draw(st.integers(0, 3)) for _ in range(lead)]
        sizes += [draw(st.integers(0, 3)) if s == 1 and draw(st.booleans())
                  else (-1 if draw(st.booleans()) else s) for s in shape]
        return name, tuple(sizes)
    if name == "diagonal":
        d1 = draw(st.integers(0, nd - 1))
        d2 = draw(st.sampled_from([i for i in range(nd) if i != d1]))
        return name, (draw(st.integers(-2, 2)), d1 - nd if draw(st.booleans()) else d1, d2)
    raise AssertionError(name)


shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple).filter(
    lambda s: math.prod(s) <= 64 and (math.prod(s) > 0 or len(s) > 0))


def _check_same(e: em.Tensor, a: np.ndarray, what: str) -> None:
    assert tuple(e.shape) == a.shape, (what, e.shape, a.shape)
    np.testing.assert_array_equal(np.asarray(e), a, err_msg=what)


def build_chain(data, shape):
    """Draw a chain and build it in ember, NumPy and torch; returns the three lists."""
    base = np.asarray(np.arange(math.prod(shape), dtype=np.float32).reshape(shape) + 1)
    e_views, n_views = [em.tensor(base)], [base.copy()]
    # NOTE: torch.zeros, then a copy: torch.tensor/from_numpy of an empty array give it
    # zero strides, where torch's own empty tensors (and ember's) are contiguous.
    t_views = [torch.zeros(shape).copy_(torch.from_numpy(base))] if torch is not None else None
    for _ in range(data.draw(st.integers(1, 5), label="length")):
        op = data.draw(view_op(tuple(e_views[-1].shape)), label="op")
        try:
            e = apply(e_views[-1], op)
        except RuntimeError as err:  # only `view` may refuse, exactly where torch does
            assert op[0] == "view" and "Use .reshape(...) instead" in str(err), (op, err)
            if torch is not None:
                with pytest.raises(RuntimeError, match=re.escape("Use .reshape(...) instead")):
                    apply(t_views[-1], op)
            continue
        copied = e._storage is not e_views[-1]._storage
        n = apply_np(n_views[-1], op, copied)
        _check_same(e, n, f"after {op}")
        if torch is not None:
            t = apply(t_views[-1], op)
            assert_view_like(e, e_views[0], t, t_views[0], what=f"after {op}")
            t_views.append(t)
        e_views.append(e)
        n_views.append(n)
    return e_views, n_views, t_views


@given(st.data(), shapes)
def test_view_chains_match_numpy_and_torch(data, shape):
    build_chain(data, shape)


WRITES = ["add_", "mul_", "fill_", "copy_", "setitem", "iadd"]
# torch refuses these on views whose elements alias; it allows fill_ and setitem there
# (see test_fill_of_an_expanded_view_writes_every_alias).
ALIAS_REFUSED = ["add_", "mul_", "copy_", "iadd"]


def write(x, kind: str, value: float, index):
    """One in-place write on an ember/torch tensor or (for NumPy) an ndarray."""
    if isinstance(x, np.ndarray):
        if kind in ("add_", "iadd"):
            x += value
        elif kind == "mul_":
            x *= value
        elif kind in ("fill_", "copy_"):
            x[...] = value
        else:
            x[index] = value
        return
    if kind == "add_":
        x.add_(value)
    elif kind == "iadd":
        x += value
    elif kind == "mul_":
        x.mul_(value)
    elif kind == "fill_":
        x.fill_(value)
    elif kind == "copy_":
        lib = torch if torch is not None and isinstance(x, torch.Tensor) else em
        x.copy_(lib.full(tuple(x.shape), value))
    else:
        x[index] = value


def _index(data, shape):
    """A basic index for a setitem on `shape`."""
    if not shape:
        return data.draw(st.sampled_from([Ellipsis, ()]), label="index")
    choices = [Ellipsis, (slice(None, None, 2),), (Ellipsis, slice(1, None))]
    if shape[0]:
        choices += [0, -1, (slice(None), None) if len(shape) == 1 else (0, slice(None, None, 2))]
    return data.draw(st.sampled_from(choices), label="index")


@given(st.data(), shapes)
def test_writes_through_views_reach_the_base_and_other_views(data, shape):
    e_views, n_views, t_views = build_chain(data, shape)
    k = data.draw(st.integers(0, len(e_views) - 1), label="written view")
    kind = data.draw(st.sampled_from(WRITES), label="write")
    value = data.draw(st.sampled_from([2.0, -0.5, 3.0]), label="value")
    e, n = e_views[k], n_views[k]
    if e.numel() == 0:
        return  # NOTE: see test_write_to_an_empty_view_past_the_storage_end (a known bug)
    index = _index(data, tuple(e.shape)) if kind == "setitem" else None
    versions = [v._storage.version for v in e_views]
    if e._view.has_overlap():
        kind = ALIAS_REFUSED[WRITES.index(kind) % len(ALIAS_REFUSED)]
        # NOTE: writing a view whose elements alias (an expanded dim) is an error, as in torch.
        before = [np.asarray(v).copy() for v in e_views]
        with pytest.raises(RuntimeError, match=OVERLAP):
            write(e, kind, value, index)
        if torch is not None:
            with pytest.raises(RuntimeError, match=OVERLAP):
                write(t_views[k], kind, value, index)
        for v, b, ver in zip(e_views, before, versions):
            np.testing.assert_array_equal(np.asarray(v), b)
            assert v._storage.version == ver
        return
    write(e, kind, value, index)
    write(n, kind, value, index)
    if torch is not None:
        write(t_views[k], kind, value, index)
    for i, (ev, nv) in enumerate(zip(e_views, n_views)):
        _check_same(ev, nv, f"view {i} after {kind} on view {k}")
        if torch is not None:
            np.testing.assert_array_equal(np.asarray(ev), t_views[i].numpy())
    if e._storage is e_views[0]._storage and e.numel():
        assert e_views[0]._storage.version > versions[0]


# ---------------------------------------------------------------- named properties

def test_views_share_data_ptr_and_report_torch_strides():
    x = em.arange(24.0).view(2, 3, 4)
    v = x.transpose(0, 2)[1:, ::2]
    assert v.stride() == (1, 8, 12) and v.storage_offset() == 1
    assert v.data_ptr() == x.data_ptr() + 4 * 1
    assert v._storage is x._storage and not v.is_contiguous()
    assert x[1].data_ptr() == x.data_ptr() + 12 * 4


def test_view_refuses_where_strides_cannot_express_it_and_reshape_copies():
    x = em.arange(6.0).view(2, 3).t()
    with pytest.raises(RuntimeError, match=r"view size is not compatible .* Use \.reshape"):
        x.view(6)
    y = x.reshape(6)
    assert y._storage is not x._storage and y.tolist() == [0, 3, 1, 4, 2, 5]
    z = x.reshape(3, 2)  # same shape: a view
    assert z._storage is x._storage


def test_write_through_view_is_visible_in_other_views_before_realisation():
    x = em.zeros(3, 4)
    row, col, diag = x[1], x[:, 2], x.diagonal()
    row.add_(1.0)
    col.mul_(5.0)
    diag.fill_(-1.0)
    expected = np.zeros((3, 4), np.float32)
    expected[1] += 1
    expected[:, 2] *= 5
    np.fill_diagonal(expected, -1)
    for v, ref in [(x, expected), (row, expected[1]), (col, expected[:, 2]),
                   (diag, np.diagonal(expected))]:
        np.testing.assert_array_equal(v.numpy(), ref)


def test_view_of_a_realised_tensor_sees_later_writes():
    x = em.arange(6.0).realize()
    v = x.view(2, 3)
    np.asarray(v)  # realised
    x[0] = 100.0
    assert v[0, 0].item() == 100.0


def test_storage_version_counts_writes():
    x = em.zeros(4)
    v = x[1:3]
    before = x._storage.version
    v.add_(1)
    x.mul_(2)
    assert x._storage.version == before + 2 and v._storage is x._storage


def test_fill_of_an_expanded_view_writes_every_alias():
    x = em.zeros(1)
    x.expand(3).fill_(2.0)
    assert x.item() == 2.0


def test_write_to_an_empty_view_past_the_storage_end():
    x = em.zeros(0, 2)
    v = x.select(1, 1)  # torch's storage offset: 1, although the storage is empty
    assert v.storage_offset() == 1
    v.add_(1.0)
    assert x.numpy().shape == (0, 2)


# ---------------------------------------------------------------- whole-tensor indexing

WHOLE = ["x[:]", "x[0:3]", "x[0:100]", "x[::1]", "x[-3:]", "x[...]", "x[:, :]",
         "x[:, 0:4]", "x[..., :]", "x[()]", "y[()]", "y[...]", "x[:, :].flatten(0, 0)"]


def _whole(m, form: str):
    x = m.arange(12.0).reshape(3, 4).requires_grad_()
    y = m.tensor(2.0, requires_grad=True)
    v = eval(form)
    v.retain_grad()
    ((v * 3).sum() + (x.sum() + y) * 2).backward()
    return [v is x or v is y, v._base is x or v._base is y, v.is_leaf, v.requires_grad,
            v.grad_fn.name(), v.grad.tolist(), x.grad.tolist(), y.grad.tolist()]


@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("eager", [False, True])
@pytest.mark.parametrize("form", WHOLE)
def test_indexing_all_of_a_tensor_gives_a_new_view_as_torch(form, eager):
    """`x[:]` is a slice and `x[...]` an alias of x: new views with their own history, so
    `retain_grad()` on them reports their own gradient, not x's."""
    was = em.is_eager()
    em.set_eager(eager)
    try:
        got = _whole(em, form)
    finally:
        em.set_eager(was)
    assert got == _whole(torch, form)


@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("eager", [False, True])
def test_empty_views_past_the_end_of_their_storage_read_as_torch(eager):
    def run(m):
        x = m.tensor([[0.5], [-2.0], [0.25]])
        v = x[2, ::2].narrow(0, 1, 0)  # offset 4 of a 3-element storage
        e = m.arange(6.0).reshape(2, 3)[:, 3:]
        e.add_(1)
        return [v.storage_offset(), v.tolist(), (v * 2).tolist(), repr(v), e.tolist(),
                (e + 1).sum().item()]

    was = em.is_eager()
    em.set_eager(eager)
    try:
        got = run(em)
    finally:
        em.set_eager(was)
    assert got == run(torch)
