"""The fixed effects' covariance where some coefficients have none.

A coefficient with no finite estimate (separation) has no standard error: its row and column
are NaN, and the others' covariance is computed with it held at its value (the Hessian rows of
the diverging coefficients are dropped before inverting). Where the curvature is not positive
definite (a negative or non-finite variance after inversion), the standard error is not
available either: NaN again, rather than a square root of a negative number.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


def kept_rows(n_theta: int, n_fixed: int, diverging: tuple[int, ...]) -> tuple[IntArray, IntArray]:
    """Indices of the (theta, beta) Hessian rows to keep, and of the kept fixed effects."""
    keep = np.ones(n_fixed, dtype=bool)
    keep[[j for j in diverging if 0 <= j < n_fixed]] = False
    kept = np.flatnonzero(keep)
    return np.concatenate([np.arange(n_theta), n_theta + kept]).astype(np.intp), kept


def spread_covariance(
    vcov_kept: FloatArray, kept: IntArray, n_fixed: int
) -> tuple[FloatArray, tuple[int, ...]]:
    """The n_fixed x n_fixed covariance with NaN rows and columns for the coefficients not kept
    and for those whose variance is not a positive finite number; returns it and the latter."""
    if len(kept) == n_fixed:
        vcov = vcov_kept.copy()
    else:
        vcov = np.full((n_fixed, n_fixed), np.nan)
        vcov[np.ix_(kept, kept)] = vcov_kept
    variance = np.diagonal(vcov_kept)
    bad = kept[~(np.isfinite(variance) & (variance > 0.0))]
    vcov[bad, :] = np.nan
    vcov[:, bad] = np.nan
    return vcov, tuple(int(j) for j in bad)


def transform_covariance(c: FloatArray, vcov: FloatArray) -> FloatArray:
    """c vcov c' for a linear map of the coefficients (beta = c beta~), with NaN kept to the
    coefficients that depend on one without a covariance: a plain product would spread NaN
    (0 * NaN) to every entry."""
    missing = np.isnan(np.diagonal(vcov))
    finite = np.where(np.isnan(vcov), 0.0, vcov)
    mapped = c @ finite @ c.T
    touched = (c[:, missing] != 0.0).any(axis=1)
    mapped[touched, :] = np.nan
    mapped[:, touched] = np.nan
    return np.asarray(0.5 * (mapped + mapped.T), dtype=np.float64)


def sd_correlation(cov: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Standard deviations and correlation matrix of a covariance matrix; a correlation with a
    zero SD is NaN (not defined)."""
    sd = np.sqrt(np.diag(cov))
    positive = sd > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    corr[~np.outer(positive, positive)] = np.nan
    return sd, corr
