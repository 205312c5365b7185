"""Standard normal tails and quantiles from the standard library (math.erfc and
statistics.NormalDist, Wichura's AS 241), for the tables of a fit.

scipy.special computes the same (ndtr, ndtri) but costs a first call about 0.15 s to import;
a fit's table needs a handful of values. Accuracy: the tail to about 1e-13 relative (erfc),
the quantile to the last bits (AS 241, as scipy's ndtri).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

STANDARD = NormalDist()

_ERFC = np.frompyfunc(math.erfc, 1, 1)


def upper_tail(x: ArrayLike) -> FloatArray:
    """P(Z > x) for a standard normal Z, elementwise (scipy.special.ndtr(-x)); NaN stays NaN."""
    values = np.asarray(x, dtype=np.float64)
    return np.asarray(0.5 * _ERFC(values / math.sqrt(2.0)), dtype=np.float64)


def quantile(p: float) -> float:
    """q with P(Z <= q) = p (scipy.special.ndtri), for 0 < p < 1; NaN otherwise."""
    p = float(p)
    if not 0.0 < p < 1.0:
        return math.nan
    return STANDARD.inv_cdf(p)
