"""Diagnostics of a posterior that the data barely inform, shared by the Bayesian methods.

Under separation the likelihood has no finite maximum, but a posterior with proper priors is
still proper: its means are finite only because of the priors, on which they then depend. The
fit itself looks well behaved (converged, finite), so these checks look at the data: the linear
programs of model/separation.py, run only when the posterior gives a reason (a coefficient
whose posterior the data barely inform, or one far into its prior's tail; a random-effect SD
whose posterior stays as wide as its prior) so that ordinary fits pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.diagnostics import BoundaryWarning, FitWarning, SeparationWarning
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.separation import (
    detect_group_separation,
    detect_separation,
    within_groups_text,
)
from glmm_binomial.model.validation import block_text

FloatArray = NDArray[np.float64]


def in_prior_tail(beta_mean: FloatArray, prior_fe_sd: float, prior_sds: float) -> bool:
    """Whether some posterior mean lies more than `prior_sds` prior SDs from 0."""
    return bool(np.any(np.abs(beta_mean) > prior_sds * prior_fe_sd))


def fixed_effect_separation(data: ModelData, prior_fe_sd: float) -> FitWarning | None:
    """A SeparationWarning when the fixed effects separate the responses (their posterior means
    then rest on the N(0, prior_fe_sd^2) prior); None otherwise."""
    found = detect_separation(data.x, data.successes, data.trials)
    if not found.coefficients:
        return None
    kind = "complete" if found.complete else "quasi-complete"
    names = ", ".join(data.fixed_names[j] for j in found.coefficients)
    return FitWarning(
        f"{kind} separation: y is predicted perfectly by a combination of {names}; maximum "
        "likelihood has no finite estimate there, and these posterior means are finite only "
        f"because of the N(0, {prior_fe_sd:g}^2) prior, on which they depend",
        SeparationWarning,
    )


def group_separation(data: ModelData, loose_blocks: list[int]) -> FitWarning | None:
    """A SeparationWarning when, for one of `loose_blocks` (random-effect terms whose SD
    posterior stays about as wide as its prior), fixed and random effects together predict
    every group's responses perfectly; None otherwise."""
    if not loose_blocks:
        return None
    columns = tuple((t, c) for t, c in detect_group_separation(data).columns if t in loose_blocks)
    if not columns:
        return None
    where, variances, _ = within_groups_text(data, columns)
    return FitWarning(
        f"separation within groups: {where}; maximum likelihood has no finite estimate for "
        f"{variances}, and the posterior of the random-effect SDs is finite only because of "
        "the log-normal prior, on which it depends",
        SeparationWarning,
    )


def loose_log_sds(
    log_sd_mean: FloatArray, log_sd_sd: FloatArray, prior_log_sd_sd: float, prior_sds: float
) -> list[int]:
    """Indices of log-SD posteriors (one per term) that the data do not pin down: still wider
    than half the prior's SD while above 0, or with a mean more than `prior_sds` prior SDs
    above 0 (a mean-field posterior is too narrow to show the first)."""
    mean, sd = np.asarray(log_sd_mean), np.asarray(log_sd_sd)
    loose = ((sd > 0.5 * prior_log_sd_sd) & (mean > 0.0)) | (mean > prior_sds * prior_log_sd_sd)
    return [int(t) for t in np.flatnonzero(loose)]


def variance_boundary(
    data: ModelData,
    theta: FloatArray,
    beta: FloatArray,
    loglik: Callable[[FloatArray, FloatArray], float],
) -> list[FitWarning]:
    """The Bayesian analogue of a boundary fit: for each random-effect term, a BoundaryWarning
    when the Laplace log-likelihood (`loglik(theta, beta)`) at the posterior means is no higher
    than with that term's covariance set to zero (the others kept): the data then favour a
    smaller, possibly zero, variance, and the posterior's SD is held up by its prior."""
    at_mean = loglik(theta, beta)
    if not np.isfinite(at_mean):
        return []
    out: list[FitWarning] = []
    for block, part in zip(data.blocks, data.theta_slices(), strict=True):
        zeroed = theta.copy()
        zeroed[part] = 0.0
        if loglik(zeroed, beta) >= at_mean:
            out.append(
                FitWarning(
                    f"the likelihood is at least as high with the random-effect covariance of "
                    f"{block_text(block)} at zero as at its posterior mean: the data favour a "
                    "smaller, possibly zero, variance (a maximum-likelihood fit would be on or "
                    "near the boundary), and its posterior SD is held up by the log-normal prior",
                    BoundaryWarning,
                )
            )
    return out
