"""Philox 4x32-10: the counter-based generator behind every random op.

A random value is a pure function of (seed, the random op's sequence number, the
element's logical index): counter = (index low, index high, sequence, 0), key =
(seed low, seed high). Any back end that evaluates the same function gets the same
numbers, however the work is split or fused.
"""

from __future__ import annotations

import numpy as np

__all__ = ["philox4x32", "uniform_bits", "uniform"]

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK = np.uint64(0xFFFFFFFF)
_MANTISSA = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}


def philox4x32(c0, c1, c2, c3, k0: int, k1: int, rounds: int = 10):
    """Apply Philox 4x32 to arrays of counter words; returns four uint32 arrays."""
    c = [np.asarray(x, dtype=np.uint64) for x in (c0, c1, c2, c3)]
    for r in range(rounds):
        key0 = np.uint64((k0 + r * _W0) & 0xFFFFFFFF)
        key1 = np.uint64((k1 + r * _W1) & 0xFFFFFFFF)
        p0 = _M0 * c[0]
        p1 = _M1 * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & _MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & _MASK
        c = [hi1 ^ c[1] ^ key0, lo1, hi0 ^ c[3] ^ key1, lo0]
    return tuple(x.astype(np.uint32) for x in c)


def uniform_bits(seed: int, seq: int, numel: int):
    """The four Philox words for elements 0..numel-1 of random op `seq`."""
    idx = np.arange(numel, dtype=np.uint64)
    return philox4x32(idx & _MASK, idx >> np.uint64(32), np.full(numel, seq & 0xFFFFFFFF),
                      np.zeros(numel, np.uint64), seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)


def uniform(seed: int, seq: int, stream: int, numel: int, dtype_name: str) -> np.ndarray:
    """Uniform floats in [0, 1) with as many random bits as `dtype_name` holds exactly.

    Stream 0 reads Philox words 0 and 1, stream 1 words 2 and 3 (Box-Muller pairs).
    """
    words = uniform_bits(seed, seq, numel)
    hi = words[2 * stream].astype(np.uint64)
    bits = _MANTISSA[dtype_name]
    if bits <= 32:
        return ((hi >> np.uint64(32 - bits)).astype(np.float64) * 2.0 ** -bits)
    lo = words[2 * stream + 1].astype(np.uint64)
    v = (hi << np.uint64(21)) | (lo >> np.uint64(11))  # 53 bits
    return v.astype(np.float64) * 2.0 ** -53
