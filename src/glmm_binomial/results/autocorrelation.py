"""Tests of residuals for temporal and spatial autocorrelation, as DHARMa runs them on its
scaled residuals: the Durbin-Watson test (lmtest's dwtest(r ~ 1, order.by = time)) and
Moran's I with inverse-distance weights (ape's Moran.I(r, 1 / distance))."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.numerics import normal

FloatArray = NDArray[np.float64]

DW_EXACT_BELOW = 100
"""dwtest's default: the exact null distribution below this many values, else its normal
approximation."""

IMHOF_TOL = 1e-10
"""Absolute tolerance of the numerical integral of Imhof's formula (the exact p-value)."""

MORAN_BLOCK = 2048
"""Rows of the inverse-distance matrix held at once: Moran's I in O(n * MORAN_BLOCK) memory,
never the n x n matrix (ape's Moran.I and DHARMa build it whole)."""

ALTERNATIVES = ("two.sided", "greater", "less")
"""The alternatives of the residual tests, as DHARMa (and R's tests) name them."""


def durbin_watson(
    values: FloatArray, order: FloatArray, alternative: str = "two.sided"
) -> tuple[float, float]:
    """The Durbin-Watson statistic of `values` in the order of `order` (each value's time,
    distinct), centred (the residuals of a regression on the constant), and its p-value as
    lmtest's dwtest: "greater" tests positive autocorrelation (P(DW <= d)), "less" negative,
    "two.sided" twice the smaller tail; the exact null distribution (normal errors; Imhof's
    formula, for the constant the eigenvalues 2 - 2 cos(pi j / n), j = 1..n-1) below
    DW_EXACT_BELOW values, the normal approximation with the exact mean and variance from
    that many on. Returns (statistic, p); p is NaN below 3 values (dwtest sets it to 1)."""
    check_alternative(alternative)
    values = np.asarray(values, dtype=np.float64)
    ordered = values[np.argsort(np.asarray(order, dtype=np.float64), kind="stable")]
    n = ordered.size
    centred = ordered - ordered.mean()
    total = float(centred @ centred)
    if n < 3 or total == 0.0:
        return (math.nan if total == 0.0 else float(np.sum(np.diff(centred) ** 2) / total)), (
            math.nan
        )
    statistic = float(np.sum(np.diff(centred) ** 2) / total)
    eigenvalues = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, n) / n)
    if n < DW_EXACT_BELOW:
        below = _imhof_below(eigenvalues - statistic)
        tails = {"greater": below, "less": 1.0 - below}
    else:
        mean = float(eigenvalues.mean())
        m = n - 1
        variance = 2.0 * (float(eigenvalues @ eigenvalues) - m * mean**2) / (m * (m + 2))
        z = (statistic - mean) / math.sqrt(variance)
        tails = {"greater": float(normal.upper_tail(-z)), "less": float(normal.upper_tail(z))}
    if alternative == "two.sided":
        return statistic, min(1.0, 2.0 * min(tails.values()))
    return statistic, tails[alternative]


def _imhof_below(weights: FloatArray) -> float:
    """P(sum_j weights_j z_j^2 <= 0), z_j independent standard normal (Imhof 1961)."""
    from scipy import integrate

    def integrand(u: float) -> float:
        theta = 0.5 * float(np.sum(np.arctan(weights * u)))
        rho = float(np.exp(0.25 * np.sum(np.log1p((weights * u) ** 2))))
        return math.sin(theta) / (u * rho)

    # The integrand is finite at 0 (sum(weights) / 2) and decays like u^-(1 + m/2).
    value, _ = integrate.quad(integrand, 0.0, np.inf, epsabs=IMHOF_TOL, limit=500)
    return float(min(1.0, max(0.0, 0.5 - value / math.pi)))


def moran_i(
    values: FloatArray, x: FloatArray, y: FloatArray, alternative: str = "two.sided"
) -> tuple[float, float, float, float]:
    """Moran's I of `values` at the points (x, y) with the inverse Euclidean distances as
    weights, each row scaled to sum 1, and its test under normality, as ape's Moran.I (the
    kurtosis-corrected variance): (observed, expected -1/(n-1), sd, p). "greater" tests
    positive autocorrelation. Points must be distinct. Computed in blocks of MORAN_BLOCK rows
    (memory O(n MORAN_BLOCK), time O(n^2))."""
    check_alternative(alternative)
    values = np.asarray(values, dtype=np.float64)
    points = np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])
    n = values.size
    centred = values - values.mean()
    # Pass 1: the row sums of the inverse distances (a zero row keeps sum 1, as ape).
    row_sums = np.empty(n)
    for start, block in _inverse_distances(points):
        row_sums[start : start + len(block)] = block.sum(axis=1)
    row_sums[row_sums == 0] = 1.0
    inverse_sums = 1.0 / row_sums
    # Pass 2: W y, sum W, S1 = sum (W_ij + W_ji)^2 / 2 and the column sums of W, with
    # W_ij = w_ij / r_i and w symmetric.
    weighted = np.empty(n)
    column_sums = np.zeros(n)
    total = 0.0
    s1 = 0.0
    for start, block in _inverse_distances(points):
        rows = slice(start, start + len(block))
        scaled = block * inverse_sums[rows, None]
        weighted[rows] = scaled @ centred
        column_sums += scaled.sum(axis=0)
        total += float(scaled.sum())
        s1 += float(np.sum((block * (inverse_sums[rows, None] + inverse_sums[None, :])) ** 2))
    s1 *= 0.5
    s2 = float(np.sum((row_sums * inverse_sums + column_sums) ** 2))
    variance_sum = float(centred @ centred)
    observed = (n / total) * float(centred @ weighted) / variance_sum
    expected = -1.0 / (n - 1)
    kurtosis = (float(np.sum(centred**4)) / n) / (variance_sum / n) ** 2
    square = total**2
    sd_squared = (
        n * ((n * n - 3 * n + 3) * s1 - n * s2 + 3 * square)
        - kurtosis * (n * (n - 1) * s1 - 2 * n * s2 + 6 * square)
    ) / ((n - 1) * (n - 2) * (n - 3) * square) - 1.0 / (n - 1) ** 2
    sd = math.sqrt(sd_squared) if sd_squared > 0 else math.nan
    z = (observed - expected) / sd
    upper = float(normal.upper_tail(z))
    p = {
        "greater": upper,
        "less": 1.0 - upper,
        "two.sided": 2.0 * min(upper, 1.0 - upper),
    }[alternative]
    return observed, expected, sd, p


def _inverse_distances(points: FloatArray) -> Any:
    """(start, block) of the inverse-distance matrix's rows, 0 on the diagonal."""
    n = points.shape[0]
    for start in range(0, n, MORAN_BLOCK):
        chunk = points[start : start + MORAN_BLOCK]
        distance = np.sqrt(((chunk[:, None, :] - points[None, :, :]) ** 2).sum(axis=2))
        with np.errstate(divide="ignore"):
            block = 1.0 / distance
        block[np.arange(len(chunk)), start + np.arange(len(chunk))] = 0.0
        yield start, block


def check_alternative(alternative: str) -> None:
    """ValueError naming `alternative` unless it is one of ALTERNATIVES."""
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"alternative must be one of {', '.join(map(repr, ALTERNATIVES))}, got {alternative!r}"
        )
