"""Programs the differential fuzzers (tests/fuzz) found failing, each shrunk to its
core and run against torch (or against ember uncompiled, for em.compile findings)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_same, needs_torch, torch

import ember as em


@needs_torch
def test_broadcast_of_one_to_an_empty_axis_is_not_fused_with_its_input():
    # compile fuzzer seed 32498: (1,) / (1,) read again broadcast to (0,) put both in
    # one kernel over the domain (1,), which wrote index 0 of the empty output
    def fn(x):
        y = x / x
        return y[1:] / y, y

    t = torch.tensor([-1.5])
    expected = fn(t)
    lazy = fn(em.tensor([-1.5]))
    em.realize(*lazy)
    compiled = em.compile(fn)(em.tensor([-1.5]))
    for got in (lazy, compiled):
        for a, b in zip(got, expected, strict=True):
            assert_same(a, b)


def _shares_then_writes(x):
    b = x.isnan()  # NOTE: no input read: an integer is never NaN
    a = b.numpy()
    b[...] = 2
    return b, a


@pytest.mark.filterwarnings("ignore:em.compile:UserWarning")
def test_numpy_of_a_value_computed_inside_a_compiled_function_shares_its_memory():
    # compile fuzzer seed 32256: numpy() of a tensor that reads no input was traced, so
    # the later in-place write never reached the array, and every call returned the
    # trace's one array
    f = em.compile(_shares_then_writes)
    arrays = []
    for _ in range(3):
        b, a = f(em.tensor(-3))
        assert a.item() is True and b.item() is True
        assert np.shares_memory(a, b.numpy())
        arrays.append(a)
    assert len({id(a) for a in arrays}) == 3


def _written_through_a_view_of_a_detached_tensor(m):
    x = m.tensor([[-1.5], [3.0], [0.0]], requires_grad=True)
    d = x.detach()
    v = d.movedim(1, 1)
    v.copy_(x - m.tensor([[1.0]]))
    flags = (d.requires_grad, v.requires_grad, d.is_leaf, v.is_leaf, x.requires_grad)
    (v * v).sum().backward()
    return flags, x.grad, d, v


@needs_torch
def test_a_write_through_a_view_of_a_detached_tensor_gives_it_history():
    # compile fuzzer seed 30621 (main fuzzer seed 700000 too): a view of x.detach() was
    # treated as a detached alias itself, so the write recorded on the view alone and
    # the detached tensor did not require grad
    got = _written_through_a_view_of_a_detached_tensor(em)
    want = _written_through_a_view_of_a_detached_tensor(torch)
    assert got[0] == want[0]
    for a, b in zip(got[1:], want[1:], strict=True):
        assert_same(a, b)


def _in_place_on_part_of_a_view_of_a_detached_tensor(m):
    v4 = m.tensor([1.0, 2.0])
    v9 = m.tensor([3.0], requires_grad=True)
    v5 = v4.detach()
    v5.view((1, 2))[:, :1].mul_(v9)
    (v5 * v5).sum().backward()
    return v5.requires_grad, v4.requires_grad, v9.grad, v5


@needs_torch
def test_in_place_with_grad_on_part_of_a_view_of_a_detached_tensor():
    got = _in_place_on_part_of_a_view_of_a_detached_tensor(em)
    want = _in_place_on_part_of_a_view_of_a_detached_tensor(torch)
    assert got[:2] == want[:2]
    for a, b in zip(got[2:], want[2:], strict=True):
        assert_same(a, b)


@needs_torch
def test_a_view_of_a_leaf_made_before_requires_grad_is_a_leaf():
    def run(m):
        a = m.zeros(3)
        v = a[:1]
        a.requires_grad_()
        return v.is_leaf, v.requires_grad

    assert run(em) == run(torch)


@needs_torch
@pytest.mark.parametrize("n", [1, 100_000])
def test_clamp_keeps_a_negative_zero_inside_its_bounds(n):
    # compile fuzzer seed 102550: clamp(-1, 0) of -0.0 gave 0.0 (NumPy's minimum returns
    # its second operand of two equal ones), so rsqrt gave inf where torch gives -inf
    # NOTE: torch's own minimum/maximum return either zero, depending on the size
    x = [-0.0, 0.0, 0.25, -3.0, float("nan")] * n

    def fn(t):
        return (t.clamp(-1.0, 0.0).rsqrt(), t.clamp(min=-0.0).rsqrt(),
                t.clamp(max=0.0).rsqrt(), t.clamp(min=0.0).rsqrt())

    want = fn(torch.tensor(x))
    for out in (fn(em.tensor(x)), em.compile(fn)(em.tensor(x))):
        for a, b in zip(out, want, strict=True):
            assert_same(a, b)
