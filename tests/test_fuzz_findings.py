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
