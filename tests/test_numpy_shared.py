"""Memory shared with NumPy (`from_numpy`, `numpy()`), against `torch.from_numpy`.

Every case runs in lazy and in eager mode, on a small array (direct kernels) and on
one above the tiling threshold (tiled NumPy kernels), and the cases run one after
another in one process without clearing a cache: a value kept for reuse is the
bug these tests look for. Values are small integers in float32, so sums are exact
and ember and torch must agree bit for bit.

The rule ember states (README, `em.from_numpy`): a lazy expression reads the shared
memory when it is computed, so one built before a NumPy write and computed after it
sees the write; torch computed it before. Eager mode gives torch's order.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ember as em
from ember.codegen.numpy_policy import TILED_ABOVE

torch = pytest.importorskip("torch")

SHAPES = {"small": (2, 3), "tiled": (4, TILED_ABOVE // 2)}  # 6 and 16384 elements
MODES = ["lazy", "eager"]


def _data(shape) -> np.ndarray:
    return (np.arange(int(np.prod(shape))) % 5).astype(np.float32).reshape(shape)


def _value(x):
    """A recorded value: a NumPy copy of a tensor or an array, a number as it is."""
    if isinstance(x, (em.Tensor, torch.Tensor)):
        return np.array(x.detach().numpy() if isinstance(x, torch.Tensor) else x.detach()._array())
    if isinstance(x, np.ndarray):
        return x.copy()
    return x


def _same(got: list, want: list, case: str) -> None:
    assert len(got) == len(want), case
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g, w, err_msg=f"{case}: value {i}")


# ---------------------------------------------------------------- the cases
# Each case gets the library M (em or torch) and a fresh array it shares with
# M.from_numpy; it returns the values it recorded, in order.


def recompute_after_numpy_write(M, a):
    """A kept result of (x * 2).sum() must not answer for the same expression later."""
    x = M.from_numpy(a)
    r1 = (x * 2).sum()
    out = [r1.item()]
    a[0, 0] = 100
    r2 = (x * 2).sum()
    out += [r2.item(), r1.item(), (x * 2)[0].sum().item()]
    a[0, 0] = -3
    out += [(x * 2).sum().item(), x.sum().item()]
    return out


def recompute_after_write_through_numpy_of_ember_tensor(M, a):
    """`t.numpy()` of a tensor ember made shares its memory: writes to it count too."""
    x = M.tensor(a.tolist())
    b = x.numpy()
    r1 = (x * 2).sum()
    out = [r1.item()]
    b[0, 0] = 100
    out += [(x * 2).sum().item(), r1.item()]
    return out


def numpy_taken_after_a_result_was_kept(M, a):
    """A value kept before `numpy()` shared its input is forgotten when it is shared."""
    x = M.tensor(a.tolist())
    r1 = (x * 2).sum()
    out = [r1.item()]
    b = x.numpy()
    b[0, 0] = 100
    out += [(x * 2).sum().item(), r1.item()]
    return out


def write_into_numpy_of_a_result(M, a):
    """The array of a result is its memory: writing it must not change a recomputation."""
    x = M.from_numpy(a)
    r1 = (x * 3).sum()
    arr = r1.numpy()
    arr[...] = 999
    return [r1.item(), (x * 3).sum().item()]


def inplace_reaches_numpy_at_once(M, a):
    """Each in-place op is in the array before the call returns (before any read)."""
    t = M.from_numpy(a)
    out = []
    t.add_(1)
    out.append(a)
    t[0, 1] = 5
    out.append(a)
    t.t()[2].mul_(3)  # a view
    out.append(a)
    t[1].zero_()
    out.append(a)
    t += 2
    out.append(a)
    t[:, 1:3].copy_(M.ones(t.shape[0], 2))
    out.append(a)
    t.fill_(7)
    out.append(a)
    t.copy_(M.from_numpy(_data(a.shape)) * 2)
    out.append(a)
    out.append(t)
    return out


def inplace_of_a_numpy_d_tensor(M, a):
    """`numpy()` of a tensor ember made: its in-place updates reach that array at once."""
    t = M.tensor(a.tolist())
    b = t.numpy()
    t.sub_(1)
    out = [b]
    t[0] = 9
    out.append(b)
    return out


def grad_accumulates_into_numpy_d_grad(M, a):
    """`.grad` is updated in place by a second backward(): its NumPy array sees it."""
    w = M.tensor(a.tolist(), requires_grad=True)
    (w * 2).sum().backward()
    g = w.grad.numpy()
    (w * 3).sum().backward()
    return [g]


def expression_then_inplace_keeps_torch_order(M, a):
    """An ember in-place write after an expression was built is not seen by it (as torch)."""
    x = M.from_numpy(a)
    y = x * 2
    x.add_(1)
    return [y, x, a]


def autograd_over_shared_memory(M, a):
    """A loss printed before backward, over memory NumPy then changes."""
    w = M.from_numpy(a).requires_grad_()
    loss = (w * w).sum()
    out = [loss.item()]
    a[0, 0] = 4
    loss2 = (w * w).sum()
    out.append(loss2.item())
    loss2.backward()
    out.append(w.grad)
    with M.no_grad():
        w.sub_(w.grad)  # the optimizer step lands in `a`
    out.append(a)
    return out


def as_tensor_shares_memory(M, a):
    """`as_tensor` of an array needing no conversion is `from_numpy`: both see writes."""
    t = M.as_tensor(a)
    same = M.as_tensor(a, dtype=M.float32, device="cpu")
    copied = M.as_tensor(a, dtype=M.float64)
    r1 = (t * 2).sum()
    out = [r1.item()]
    a[0, 0] = 100
    out += [t, same, copied, (t * 2).sum().item()]
    t.mul_(2)
    out.append(a)
    same[1] = 7
    out += [a, t]
    return out


def numpy_of_a_view_is_writable(M, a):
    """`v.numpy()` of a view is a writable view of the tensor's memory, as in torch."""
    x = M.tensor(a.tolist()) * 1  # pending in lazy mode
    v = x[1, 1:]
    r1 = (x * 2).sum()
    out = [r1.item()]
    arr = v.numpy()
    arr *= 2
    out += [x, v, (x * 2).sum().item(), (v + 1).sum().item()]
    xt = x.t().detach().numpy()
    xt[1, 0] = -5
    out += [x, (x * 2).sum().item(), arr]
    x.add_(1)
    out += [arr, xt]
    return out


CASES = [recompute_after_numpy_write, recompute_after_write_through_numpy_of_ember_tensor,
         numpy_taken_after_a_result_was_kept, write_into_numpy_of_a_result,
         inplace_reaches_numpy_at_once, inplace_of_a_numpy_d_tensor,
         grad_accumulates_into_numpy_d_grad, expression_then_inplace_keeps_torch_order,
         autograd_over_shared_memory, as_tensor_shares_memory, numpy_of_a_view_is_writable]


def _run(case, M, shape) -> list:
    return [_value(v) for v in case(M, _data(shape))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", list(SHAPES))
def test_cases_in_sequence_match_torch(mode, size):
    """Every case, twice over, in one process: the second round finds warm caches."""
    em.set_eager(mode == "eager")
    for _ in range(2):
        for case in CASES:
            _same(_run(case, em, SHAPES[size]), _run(case, torch, SHAPES[size]),
                  f"{case.__name__} ({mode}, {size})")


def test_both_modes_and_sizes_interleaved():
    """The same cases with lazy and eager runs and both sizes interleaved."""
    for case in CASES:
        for size in SHAPES:
            want = _run(case, torch, SHAPES[size])
            for mode in MODES:
                with em.eager() if mode == "eager" else _nothing():
                    _same(_run(case, em, SHAPES[size]), want, f"{case.__name__} ({mode}, {size})")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------- built before, computed after


@pytest.mark.parametrize("size", list(SHAPES))
def test_lazy_expression_reads_memory_when_computed(size):
    """Lazy: built before a NumPy write, computed after it, it sees the write."""
    a = _data(SHAPES[size])
    x = em.from_numpy(a)
    y, s = x * 2, (x + 1).sum()
    a[0, 0] = 100
    np.testing.assert_array_equal(y.numpy(), a * 2)
    assert s.item() == (a + 1).sum()


@pytest.mark.parametrize("size", list(SHAPES))
def test_eager_expression_is_computed_before_the_write_as_in_torch(size):
    a, b = _data(SHAPES[size]), _data(SHAPES[size])
    with em.eager():
        x = em.from_numpy(a)
        y, s = x * 2, (x + 1).sum()
    xt = torch.from_numpy(b)
    yt, st = xt * 2, (xt + 1).sum()
    a[0, 0] = b[0, 0] = 100
    np.testing.assert_array_equal(y.numpy(), yt.numpy())
    assert s.item() == st.item()


# ---------------------------------------------------------------- read-only arrays

READ_ONLY_WRITES = {
    "add_": lambda t: t.add_(1),
    "setitem": lambda t: t.__setitem__((0, 0), 5.0),
    "copy_": lambda t: t.copy_(em.ones(t.shape)),
    "zero_": lambda t: t.zero_(),
    "view mul_": lambda t: t.t()[1].mul_(2),
    "iadd": lambda t: t.__iadd__(1),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("write", list(READ_ONLY_WRITES))
def test_read_only_array_refuses_inplace_and_changes_nothing(mode, write):
    em.set_eager(mode == "eager")
    a = _data(SHAPES["small"])
    a.flags.writeable = False
    t = em.from_numpy(a)
    (t * 2).sum().item()  # a kept value, if any
    version = t._version if hasattr(t, "_version") else t._storage.version
    with pytest.raises(RuntimeError, match="read-only NumPy array"):
        READ_ONLY_WRITES[write](t)
    assert t._storage.version == version
    for _ in range(2):  # the value stays readable and unchanged
        np.testing.assert_array_equal(t.numpy(), _data(a.shape))
    np.testing.assert_array_equal(a, _data(a.shape))
    assert (t * 2).sum().item() == (_data(a.shape) * 2).sum()


@pytest.mark.parametrize("mode", MODES)
def test_read_only_parameter_refuses_the_update_and_keeps_its_gradient(mode):
    em.set_eager(mode == "eager")
    a = _data(SHAPES["small"])
    a.flags.writeable = False
    w = em.from_numpy(a).requires_grad_()
    (w * w).sum().backward()
    grad = w.grad.numpy().copy()
    with em.no_grad(), pytest.raises(RuntimeError, match="read-only NumPy array"):
        w.sub_(0.1 * w.grad)
    np.testing.assert_array_equal(w.grad.numpy(), grad)
    np.testing.assert_array_equal(w.detach().numpy(), _data(a.shape))
    assert w.is_leaf and w.requires_grad and w.grad_fn is None


def test_array_made_writable_again_accepts_writes():
    a = _data(SHAPES["small"])
    a.flags.writeable = False
    t = em.from_numpy(a)
    with pytest.raises(RuntimeError, match="read-only"):
        t.add_(1)
    a.flags.writeable = True
    t.add_(1)
    np.testing.assert_array_equal(a, _data(a.shape) + 1)


# ---------------------------------------------------------------- em.compile


@pytest.mark.parametrize("size", list(SHAPES))
def test_compiled_functions_over_shared_memory(size):
    @em.compile
    def total(x):
        return (x * 2).sum()

    @em.compile
    def bump(x):
        x.add_(1)
        x[0, 0] += 10
        return x.sum()

    @em.compile
    def bump_t(x):
        x.add_(1)
        x[0, 0] += 10
        return x.sum()

    a, b = _data(SHAPES[size]), _data(SHAPES[size])
    x, xt = em.from_numpy(a), torch.from_numpy(b)
    for step in range(3):  # trace, then replays
        assert total(x).item() == (xt * 2).sum().item()
        a[0, 1] = b[0, 1] = 50 + step  # seen by the next call
        assert total(x).item() == (xt * 2).sum().item()
        got = bump(x).item()
        xt.add_(1)
        xt[0, 0] += 10
        assert got == xt.sum().item()
        np.testing.assert_array_equal(a, b)  # written back before the call returned
    assert total.hits >= 4 and bump.hits >= 2

    ro = _data(SHAPES[size])
    ro.flags.writeable = False
    y = em.from_numpy(ro)
    for fn in (bump, bump_t):  # a cached program, and a first call that traces
        with pytest.raises(RuntimeError, match="read-only NumPy array"):
            fn(y)
        np.testing.assert_array_equal(ro, _data(ro.shape))
        assert y._storage.version == 0


def test_compiled_function_reads_a_captured_shared_tensor_live():
    captured = em.from_numpy(np.ones(3, np.float32))

    @em.compile
    def f(z):
        return (captured * z).sum()

    assert f(em.ones(3)).item() == 3
    captured.numpy()[0] = 10
    assert f(em.ones(3)).item() == 12


# ---------------------------------------------------------------- not shared: still kept


def test_values_of_unshared_tensors_are_still_kept():
    """Only shared memory loses reuse: a printed loss over ember memory stays kept."""
    from ember.runtime import realized
    keep = em.from_numpy(np.zeros(3, np.float32))  # a shared buffer is alive meanwhile
    x = em.tensor([1.0, 2.0, 3.0])
    r = (x * 2).sum()
    r.item()
    assert r._node in realized
    assert keep.sum().item() == 0
    s = (em.from_numpy(np.ones(3, np.float32)) * x).sum()
    s.item()
    assert s._node not in realized


def test_np_asarray_shares_memory_as_numpy_does():
    x = em.tensor([1.0, 2.0])
    r1 = (x * 2).sum()
    r1.item()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view = np.asarray(x)
    view[0] = 5
    assert (x * 2).sum().item() == 14
    x.add_(1)
    np.testing.assert_array_equal(view, [6, 3])


@pytest.mark.parametrize("mode", MODES)
def test_strided_array_is_written_and_reread_in_place(mode):
    """A strided array is shared through the memory it spans: only its elements change."""
    em.set_eager(mode == "eager")
    outs = []
    for M in (em, torch):
        base = np.arange(24, dtype=np.float32).reshape(4, 6)
        x = M.from_numpy(base[:, ::2])
        r1 = (x * 2).sum()
        got = [r1.item()]
        base[1, 2] = 100  # an element of x, written by NumPy
        x.add_(1)
        got += [base.copy(), (x * 2).sum().item(), r1.item()]
        x[0, 1] = -1
        got.append(base.copy())
        outs.append(got)
    _same(outs[0], outs[1], f"strided ({mode})")


# ---------------------------------------------------------------- as_tensor: shared or copied


@pytest.mark.parametrize("make", [
    lambda: np.arange(4, dtype=np.float32)[::-1],       # negative strides (torch raises)
    lambda: np.arange(4, dtype=">f4"),                   # byte order (torch raises)
    lambda: np.arange(4, dtype=np.uint16),               # no ember dtype shares it
    lambda: np.arange(4, dtype=np.float32).astype(np.float64),  # converted below
])
def test_as_tensor_copies_what_it_cannot_share(make):
    """An array ember cannot share (or must convert) is copied, as `em.tensor` copies it."""
    a = make()
    dtype = em.float32 if a.dtype == np.float64 else None
    t = em.as_tensor(a, dtype=dtype)
    want = em.tensor(a, dtype=dtype)
    a[...] = 9
    assert t.dtype == want.dtype
    np.testing.assert_array_equal(t.numpy(), want.numpy())


def test_as_tensor_of_a_strided_array_shares_it():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    outs = []
    for M in (em, torch):
        a = base.copy()
        t = M.as_tensor(a[:, ::2])
        a[1, 2] = -1
        t[0, 1] = 50
        outs.append([_value(t), a])
    _same(outs[0], outs[1], "strided as_tensor")


# ---------------------------------------------------------------- copy_ of values requiring grad


def _int_target(M):
    return M.tensor([[1, 2], [3, 4]])


COPIES_REQUIRING_GRAD = {
    "copy_ into bool": lambda M, w: M.tensor([True, False]).copy_(w),
    "copy_ into an int view": lambda M, w: _int_target(M)[1].copy_(w),
    "slice assignment into int": lambda M, w: _setitem(_int_target(M), (slice(None), 0), w),
    "copy_ of a number into uint8": lambda M, w: M.tensor([1, 2], dtype=M.uint8).copy_(w.sum()),
    "copy_ into an empty float view": lambda M, w: M.zeros(3, dtype=M.float16)[1:1:1].copy_(
        w.sum()),
    "copy_ into float": lambda M, w: M.zeros(2).copy_(w),
}


def _setitem(t, idx, v):
    t[idx] = v
    return t


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(COPIES_REQUIRING_GRAD))
def test_copy_from_a_tensor_requiring_grad_as_torch(case, mode):
    """Integer and bool tensors never require grad, whatever they are copied from."""
    em.set_eager(mode == "eager")
    got = [COPIES_REQUIRING_GRAD[case](M, M.tensor([1.0, 2.0], requires_grad=True))
           for M in (em, torch)]
    assert got[0].requires_grad == got[1].requires_grad, case
    np.testing.assert_array_equal(_value(got[0]), _value(got[1]))
    if got[1].requires_grad and got[1].numel():
        got[0].sum().backward()


@pytest.mark.parametrize("mode", MODES)
def test_backward_reads_forward_values_computed_before_a_numpy_write(mode):
    """A gradient reads a value computed from shared memory as it was computed (torch
    saved it), not the memory NumPy wrote since; a rebuilt expression reads it anew.

    In lazy mode the values are read before the write: one never computed is computed
    when needed (ember's rule, see `em.from_numpy`)."""
    em.set_eager(mode == "eager")
    outs = []
    for M in (em, torch):
        a = np.array([[-0.5, 1.0, 3.0]], dtype=np.float32)
        x = M.from_numpy(a)
        m = x.mean()
        e = M.tensor(-3.0, requires_grad=True)
        y = m ** e
        got = [_value(y), _value(m)]
        a[0] = 100.0
        y.backward()
        got.append(_value(e.grad))
        e.grad = None
        (x.mean() ** e).backward()
        got += [_value(e.grad), _value(M.autograd.grad(m ** e, e)[0])]
        outs.append(got)
    for g, w in zip(*outs):  # NOTE: pow's gradient is not exact: last-bit differences
        np.testing.assert_allclose(g, w, rtol=1e-6, err_msg=f"backward after a write ({mode})")


@pytest.mark.parametrize("mode", MODES)
def test_backward_reads_a_saved_tensor_numpy_wrote(mode):
    """A saved tensor shared later through `numpy()` is read as NumPy left it (torch
    reads the same memory), not computed again from its inputs."""
    em.set_eager(mode == "eager")
    grads = []
    for M in (em, torch):
        w = M.tensor([[-1.5, 0.0, 2.0], [0.25, 2.0, -3.0]], requires_grad=True)
        mask = w.int().all(0)
        y = M.where(mask, w, 3.0)
        if M is em:
            em.realize(mask, y)
        mask.numpy()[...] = True
        (y ** 2).sum().backward()
        grads.append(_value(w.grad))
    _same(grads[:1], grads[1:], f"saved mask written by NumPy ({mode})")


@pytest.mark.parametrize("mode", MODES)
def test_backward_reads_a_saved_product_laid_out_unlike_its_storage(mode):
    """A saved input computed from shared memory and read through a view of its own
    storage (the product of a transposed operand keeps the operand's layout) is read as
    computed, not computed again from what NumPy wrote since (fuzzer seed 700602).

    The product's own record reads the shared operand itself, as torch's does."""
    em.set_eager(mode == "eager")
    grads = []
    for M in (em, torch):
        v1 = M.ones((2, 2, 2), dtype=M.int64)
        a = v1.numpy()
        w = M.tensor([[1.5, 1.5], [-2.0, 3.0]], requires_grad=True)
        y = v1[..., -1].mT * w
        v = y.var(-2)
        if M is em:
            em.realize(y, v)
        a[0] = 7
        v.sum().backward()
        grads.append(_value(w.grad))
    _same(grads[:1], grads[1:], f"saved product over written memory ({mode})")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cast", [False, True])
def test_backward_reads_unbound_saved_values_computed_before_a_numpy_write(mode, cast):
    """A loss printed, then the array its input shares refilled, then backward: the saved
    values no name holds (the product inside `var`, a cast of an integer array) are the
    ones the printed loss was computed from, as torch saved them; the records that save
    the shared tensor itself read it as NumPy left it, as torch's do."""
    em.set_eager(mode == "eager")
    got = []
    for M in (em, torch):
        a = np.array([[1, 2], [3, -1]], dtype=np.int64 if cast else np.float32)
        x = M.from_numpy(a)
        w = M.tensor([[1.5, 1.5], [-2.0, 3.0]], requires_grad=True)
        xf = x.float() if cast else x
        loss = ((xf * w).var(0) + (xf * w).sigmoid().sum(0) * xf[0]).sum()
        value = _value(loss)
        a[0] = 7
        loss.backward()
        got.append([value, _value(w.grad)])
    for g, w in zip(*got):  # NOTE: sigmoid's gradient: last-bit differences
        np.testing.assert_allclose(g, w, rtol=1e-6, err_msg=f"saved values ({mode}, {cast})")


@pytest.mark.parametrize("eager", [False, True])
def test_a_copy_of_shared_memory_keeps_its_value_after_an_in_place_write(eager):
    """`v3.copy_(v1)` then an in-place write into NumPy-shared v1: v3 keeps the copy, as
    in torch (the write's realisation commits v3's pending copy in the same run, and
    must store it before it overwrites the shared memory)."""
    import contextlib
    with em.eager() if eager else contextlib.nullcontext():
        a = np.array([[-3.0, 0.25], [2.0, 0.5], [2.0, -1.5]], dtype=np.float16)
        v1 = em.as_tensor(a)
        v3 = em.zeros(3, 2, dtype=em.float16)
        v3.copy_(v1)
        v1.T.clamp_(0.0, 0.5)
        assert v3.tolist() == [[-3.0, 0.25], [2.0, 0.5], [2.0, -1.5]]
        assert a.tolist() == [[0.0, 0.25], [0.5, 0.5], [0.5, 0.0]]
