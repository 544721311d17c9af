"""Programs the differential fuzzers (tests/fuzz) found failing, each shrunk to its
core and run against torch (or against ember uncompiled, for em.compile findings)."""

from __future__ import annotations

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
