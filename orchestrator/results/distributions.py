"""Tails and quantiles of the normal, Student t and F distributions the statistics use.

The normal ones come from the standard library (``math.erfc``, ``statistics.NormalDist``), so
the far tails keep their digits; t and F from ``scipy.special``, imported on first use (SciPy
costs ~0.3 s, and only intervals and tests need it).
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["f_survival", "normal_quantile", "t_quantile", "t_two_sided_p", "two_sided_p"]


def two_sided_p(z: float) -> float:
    """2·(1 − Φ(|z|)) for a standard normal z, written as erfc(|z|/√2) so that far tails keep
    their digits instead of rounding to 0."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def normal_quantile(q: float) -> float:
    """Φ⁻¹(q), the standard normal quantile, for 0 < q < 1."""
    return NormalDist().inv_cdf(q)


def t_quantile(df: float, q: float) -> float:
    """Student t quantile with ``df`` degrees of freedom (inf: the normal quantile)."""
    if math.isinf(df):
        return normal_quantile(q)
    from scipy.special import stdtrit

    return float(stdtrit(df, q))


def t_two_sided_p(t: float, df: float) -> float:
    """2·P(T > |t|) for Student's T with ``df`` degrees of freedom (inf: the normal tail)."""
    if math.isinf(df):
        return two_sided_p(t)
    if math.isinf(t):
        return 0.0
    from scipy.special import stdtr

    return float(2 * stdtr(df, -abs(t)))


def f_survival(f: float, df1: float, df2: float) -> float:
    """P(F > f) for Snedecor's F with (``df1``, ``df2``) degrees of freedom (``df2`` inf: the
    χ²(df1)/df1 limit)."""
    if math.isinf(f):
        return 0.0
    if math.isinf(df2):
        from scipy.special import chdtrc

        return float(chdtrc(df1, df1 * f))
    from scipy.special import fdtrc

    return float(fdtrc(df1, df2, f))
