"""The fixed effects' covariance where some coefficients have none.

A coefficient with no finite estimate (separation) has no standard error: its row and column
are NaN. The others' covariance is the inverse of the information on the complement of the
directions along which the log-likelihood is flat in the limit of the diverging path
(``complement_basis``, ``project_hessian``): the limit of the full inverse at points ever
further along the path, which keeps the uncertainty of the finite combinations of the
diverging coefficients (the predictors of the cells that stay mixed). Where those directions
are not known, the diverging coefficients are held at their values (their Hessian rows
dropped before inverting). A linear combination of the coefficients orthogonal to every flat
direction (a mixed cell's predictor, a contrast of two mixed cells) keeps a finite variance in
the limit: ``LimitCovariance`` carries the projected matrix and the directions, and the
functions below take it to give those combinations their variance (NaN for the others).
Where the curvature is not positive definite (a negative or non-finite variance after
inversion), the standard error is not available either: NaN again, rather than a square root
of a negative number. Positive variances are not enough: a covariance block that is not
positive semidefinite (a saddle of the log-likelihood, as where a fit stops unconverged) gives
correlations beyond +-1, so the coefficients on its negative directions lose their standard
errors too, one at a time, until the rest is a covariance matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

CORRELATION_PSD_TOL = 1e-10
"""The fixed effects' correlation matrix counts as positive semidefinite when its smallest
eigenvalue is above -CORRELATION_PSD_TOL (rounding in the inverse of the information)."""

LOADING_TIE = 1e-9
"""Loadings on a negative eigenvalue's vector within this relative distance of the largest
tie with it (semidefinite_part drops them together)."""


ESTIMABLE_TOL = 1e-8
"""A combination c has a component along the flat directions F when max |c F| exceeds this
times max |c| (F orthonormal): its variance in the limit is not finite."""


MOVING_TOL = 1e-6
"""An estimate whose gradient g in the coefficients has |g F| beyond this (F the flat
directions, orthonormal) still changes along the diverging path: a point on it, not an
estimate (a probability already at 0 or 1, whose gradient has vanished, is its limit)."""


@dataclass(frozen=True)
class LimitCovariance:
    """A separated fit's covariance in the limit along the diverging path: ``matrix`` (p x p,
    finite but for coefficients whose curvature was not positive definite, NaN rows) is the
    covariance of every combination c of the coefficients with c ``flat`` = 0; ``flat``
    (p x m, orthonormal columns) spans the directions along which the log-likelihood is flat,
    and a combination with a component along them has no finite variance."""

    matrix: FloatArray
    flat: FloatArray


def kept_rows(n_theta: int, n_fixed: int, diverging: tuple[int, ...]) -> tuple[IntArray, IntArray]:
    """Indices of the (theta, beta) Hessian rows to keep, and of the kept fixed effects."""
    keep = np.ones(n_fixed, dtype=bool)
    keep[[j for j in diverging if 0 <= j < n_fixed]] = False
    kept = np.flatnonzero(keep)
    return np.concatenate([np.arange(n_theta), n_theta + kept]).astype(np.intp), kept


def complement_basis(flat: FloatArray) -> FloatArray:
    """An orthonormal basis (p x (p - m)) of the orthogonal complement of the columns of flat
    (p x m, orthonormal)."""
    p, m = flat.shape
    full = np.linalg.qr(flat, mode="complete")[0]
    return np.asarray(full[:, m:], dtype=np.float64)


def project_hessian(hessian: FloatArray, n_theta: int, basis: FloatArray) -> FloatArray:
    """The (theta, beta) Hessian in the coordinates (theta, c) with beta = basis c: its theta
    rows unchanged, its beta rows and columns mapped by basis."""
    theta = slice(0, n_theta)
    beta = slice(n_theta, None)
    tt = hessian[theta, theta]
    tb = hessian[theta, beta] @ basis
    bb = basis.T @ hessian[beta, beta] @ basis
    out = np.block([[tt, tb], [tb.T, 0.5 * (bb + bb.T)]])
    return np.asarray(out, dtype=np.float64)


def spread_covariance(
    vcov_kept: FloatArray, kept: IntArray, n_fixed: int
) -> tuple[FloatArray, tuple[int, ...]]:
    """The n_fixed x n_fixed covariance with NaN rows and columns for the coefficients not kept,
    for those whose variance is not a positive finite number, and for those semidefinite_part
    drops from the rest; returns it and the coefficients NaN for either of the latter."""
    if len(kept) == n_fixed:
        vcov = vcov_kept.copy()
    else:
        vcov = np.full((n_fixed, n_fixed), np.nan)
        vcov[np.ix_(kept, kept)] = vcov_kept
    variance = np.diagonal(vcov_kept)
    good = np.isfinite(variance) & (variance > 0.0)
    good[good] = semidefinite_part(vcov_kept[np.ix_(good, good)])
    bad = kept[~good]
    vcov[bad, :] = np.nan
    vcov[:, bad] = np.nan
    return vcov, tuple(int(j) for j in bad)


def semidefinite_part(cov: FloatArray) -> NDArray[np.bool_]:
    """Which coefficients of a covariance with positive variances to keep so that the kept
    block is positive semidefinite: while the correlation matrix has an eigenvalue below
    -CORRELATION_PSD_TOL, the coefficients loading most on that eigenvalue's vector are
    dropped (all of them on a tie, as the two of a 2 x 2 block always are: nothing tells
    which of them has the standard error). A coefficient with a non-finite covariance is
    dropped first."""
    keep: NDArray[np.bool_] = np.asarray(np.isfinite(cov).all(axis=1), dtype=bool)
    while keep.sum() > 1:
        index = np.flatnonzero(keep)
        sd = np.sqrt(np.diagonal(cov)[index])
        values, vectors = np.linalg.eigh(cov[np.ix_(index, index)] / np.outer(sd, sd))
        if values[0] >= -CORRELATION_PSD_TOL:
            break
        loading = np.abs(vectors[:, 0])
        keep[index[loading >= (1.0 - LOADING_TIE) * loading.max()]] = False
    return keep


def known_part(
    c: FloatArray, vcov: FloatArray, limit: LimitCovariance | None = None
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """vcov with NaN entries as 0, and which rows of c use a coefficient without a covariance
    (their products with vcov are NaN; a plain product would spread NaN, 0 * NaN, to every
    row). With a separated fit's limit: its matrix instead, and the rows without a variance
    are those with a component along its flat directions (ESTIMABLE_TOL) or using a
    coefficient whose limit covariance is NaN."""
    if limit is not None:
        vcov = limit.matrix
    missing = np.isnan(np.diagonal(vcov))
    touched = (c[:, missing] != 0.0).any(axis=1)
    if limit is not None and limit.flat.size:
        along = np.abs(c @ limit.flat).max(axis=1)
        touched |= along > ESTIMABLE_TOL * np.abs(c).max(axis=1, initial=0.0)
    if not missing.any():
        return vcov, touched
    return np.where(np.isnan(vcov), 0.0, vcov), touched


def transform_covariance(
    c: FloatArray, vcov: FloatArray, limit: LimitCovariance | None = None
) -> FloatArray:
    """c vcov c' for a linear map of the coefficients (beta = c beta~), with NaN kept to the
    coefficients that depend on one without a covariance (known_part; with a separated fit's
    limit, its covariance of the combinations that stay finite)."""
    finite, touched = known_part(c, vcov, limit)
    mapped = c @ finite @ c.T
    mapped[touched, :] = np.nan
    mapped[:, touched] = np.nan
    return np.asarray(0.5 * (mapped + mapped.T), dtype=np.float64)


def moving_rows(gradient: FloatArray, limit: LimitCovariance | None) -> NDArray[np.bool_]:
    """Which estimates (rows of their gradient in the coefficients) still change along a
    separated fit's flat directions (MOVING_TOL): their values are points on the diverging
    path, not estimates. All False without a limit."""
    if limit is None or not limit.flat.size:
        return np.zeros(len(gradient), dtype=bool)
    with np.errstate(invalid="ignore"):
        return np.asarray(np.abs(gradient @ limit.flat).max(axis=1) > MOVING_TOL, dtype=bool)


def row_variances(
    x: FloatArray, vcov: FloatArray, limit: LimitCovariance | None = None
) -> FloatArray:
    """The diagonal of x vcov x' (each row's variance, without the rows x rows product), NaN
    for the rows that use a coefficient without a covariance (known_part; with a separated
    fit's limit, its variance of the rows that stay finite)."""
    finite, touched = known_part(x, vcov, limit)
    var = np.einsum("ij,jk,ik->i", x, finite, x)
    var[touched] = np.nan
    return np.asarray(var, dtype=np.float64)


def sd_correlation(cov: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Standard deviations and correlation matrix of a covariance matrix; a correlation with a
    zero SD is NaN (not defined)."""
    sd = np.sqrt(np.diag(cov))
    positive = sd > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    corr[~np.outer(positive, positive)] = np.nan
    return sd, corr
