"""Special functions NumPy lacks, vectorised: `erf`, `erfc`, `erfinv`.

The reference interpreter and the NumPy kernels both call these (so their results
agree bit for bit). Each computes in float64 and returns float64; the caller casts.

erf and erfc are piecewise Chebyshev series, accurate to a few units in the last
place of float64 (erf within 2 ulp, erfc within 4, against 40-digit references):
erf(x) = x * P(x^2) for |x| < 1, and erfc(x) = exp(-x^2) * Q(x) on [0.5, 27.3) in six
pieces (erfc underflows beyond). The series are interpolated once, on first use, from
the C library's `math.erf`/`math.erfc` (and a continued fraction where erfc nears
underflow) at Chebyshev points, summed in extended precision: the coefficients are
exact to the rounding of those values. erfinv starts from Giles' single-precision
approximation ("Approximating the erfinv function", GPU Computing Gems, 2011) and
takes Newton steps on erf (or on log erfc near +-1, where erf's residual would
cancel), so it is as accurate as erf itself.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.polynomial import chebyshev as C

__all__ = ["erf", "erfc", "erfinv"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _fit(fn, lo: float, hi: float, degree: int = 32) -> np.ndarray:
    """Chebyshev coefficients on [lo, hi] interpolating the scalar function fn, of the
    degree where they fall below float64's rounding (at most `degree`).

    NOTE: coefficients past that point are the rounding noise of fn's values; summed
    near the interval's ends they would cost ten ulp.
    """
    coef = _interpolate(fn, lo, hi, degree)
    small = np.nonzero(np.abs(coef) < 2.0 ** -55 * np.abs(coef[0]))[0]
    return _interpolate(fn, lo, hi, int(small[0])) if len(small) else coef


def _interpolate(fn, lo: float, hi: float, degree: int) -> np.ndarray:
    n = degree + 1
    theta = np.pi * (np.arange(n) + 0.5) / n
    xs = lo + (hi - lo) * (np.cos(theta) + 1) / 2
    f = np.array([fn(float(v)) for v in xs])
    # NOTE: the interpolant's coefficients by the discrete cosine sums (exact at the
    # points), not a least-squares fit, whose conditioning costs several ulp; the
    # angles j * theta_k are reduced in integers first (their rounding would cost more)
    turns = np.outer(np.arange(n), 2 * np.arange(n) + 1) % (4 * n)
    # NOTE: summed in extended precision where the platform has it: in float64 the
    # sums' rounding adds up to several ulp at the ends of the interval
    wide = np.longdouble
    cos = np.cos(4 * np.arctan(wide(1)) * turns.astype(wide) / wide(2 * n))
    coef = (cos @ f.astype(wide) * (wide(2) / wide(n))).astype(np.float64)
    coef[0] /= 2
    return coef


def _small(u: float) -> float:
    """erf(sqrt(u)) / sqrt(u), smooth on [0, 1]."""
    if u == 0.0:
        return _TWO_OVER_SQRT_PI
    r = math.sqrt(u)
    return math.erf(r) / r


def _scaled_erfc(x: float) -> float:
    """erfc(x) * exp(x^2), smooth and slowly varying for x >= 1.

    NOTE: from 4 on by Laplace's continued fraction (erfc itself heads for underflow,
    where its digits are lost): 1 / (sqrt(pi) (x + (1/2) / (x + 1 / (x + (3/2) / ...))))
    """
    if x < 4:
        return math.erfc(x) / float(_exp_neg_square(np.array([x]))[0])
    t = x
    for n in range(400, 0, -1):
        t = x + n / 2 / t
    return 1 / (math.sqrt(math.pi) * t)


def _exp_neg_square(a: np.ndarray) -> np.ndarray:
    """exp(-a*a) without the rounding of a*a: a = hi + lo with hi exact to 26 bits."""
    hi = (a.view(np.int64) & np.int64(~0x7FFFFFF)).view(np.float64)
    lo = a - hi
    return np.exp(-hi * hi) * np.exp(-lo * (hi + a))


@functools.cache
def _series() -> tuple:
    """(P, pieces): the series, fitted on first use (a few ms; not at import)."""
    p = _fit(_small, 0.0, 1.0)
    # NOTE: erfc(x) * exp(x^2) ~ 1 / (x sqrt(pi)): each piece spans one octave, where a
    # series of degree 13 to 22 reaches float64's rounding
    pieces = [(lo, hi, _fit(_scaled_erfc, lo, hi)) for lo, hi in
              ((0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 27.3))]
    return p, pieces


def _erfc_large(a: np.ndarray) -> np.ndarray:
    """erfc(a) for a >= 0.5 (0 from 27.3 on, where it underflows)."""
    out = np.zeros_like(a)
    for lo, hi, coef in _series()[1]:
        m = (a >= lo) & (a < hi)
        if m.any():
            x = a[m]
            out[m] = C.chebval((2 * x - (lo + hi)) / (hi - lo), coef) * _exp_neg_square(x)
    return out


def _erf_small(x: np.ndarray) -> np.ndarray:
    """erf(x) for |x| < 1."""
    return x * C.chebval(2 * x * x - 1, _series()[0])


def erf(x) -> np.ndarray:
    """The error function 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise, float64."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    small = a < 1
    out = np.empty_like(x)
    out[small] = _erf_small(x[small])
    big = ~small
    # NOTE: NaN fails both comparisons and lands here: copysign keeps it NaN
    out[big] = np.copysign(1.0 - _erfc_large(a[big]), x[big])
    out[np.isnan(x)] = np.nan
    return out


def erfc(x) -> np.ndarray:
    """The complementary error function 1 - erf(x), elementwise, float64, accurate
    where it is tiny (large x)."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    small = a < 0.5
    out = np.empty_like(x)
    out[small] = 1.0 - _erf_small(x[small])
    big = ~small
    tail = _erfc_large(a[big])
    out[big] = np.where(x[big] < 0, 2.0 - tail, tail)
    out[np.isnan(x)] = np.nan
    return out


def _giles(y: np.ndarray) -> np.ndarray:
    """Giles' single-precision erfinv: a start for Newton's method."""
    w = -np.log1p(-y * y)
    central = w < 5
    wc = w - 2.5
    p1 = 2.81022636e-08
    for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
              -0.00125372503, -0.00417768164, 0.246640727, 1.50140941):
        p1 = p1 * wc + c
    wt = np.sqrt(np.maximum(w, 5)) - 3
    p2 = -0.000200214257
    for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
              -0.0076224613, 0.00943887047, 1.00167406, 2.83297682):
        p2 = p2 * wt + c
    return np.where(central, p1, p2) * y


def erfinv(y) -> np.ndarray:
    """The inverse of erf on [-1, 1] (+-inf at +-1, NaN outside), elementwise, float64."""
    y = np.asarray(y, dtype=np.float64)
    a = np.abs(y)
    inside = a < 1
    ya = np.where(inside, a, 0.0)
    x = _giles(ya)
    tail = ya > 0.5
    rest = 1.0 - ya  # NOTE: exact for ya >= 0.5 (Sterbenz): the tail's residual keeps digits
    for _ in range(4):
        slope = _TWO_OVER_SQRT_PI * _exp_neg_square(x)
        # NOTE: in the tail, Newton's method on log(erfc(x)) = log(1 - y): the start
        # may be far off where 1 - y is below float32's reach, and the log is near linear
        c = erfc(x)
        step_tail = (np.log(np.maximum(c, 1e-300)) - np.log(np.maximum(rest, 1e-300))) * c
        step = np.where(tail, -step_tail, erf(x) - ya)
        x = x - np.divide(step, slope, out=np.zeros_like(x), where=slope > 0)
    out = np.copysign(x, y)
    out = np.where(a == 1, np.copysign(np.inf, y), out)
    return np.where(inside | (a == 1), out, np.nan)
