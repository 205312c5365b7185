"""Residuals of a fit, on the proportion scale (as lme4's for glmer).

For links other than the logit the working residual is (y - mu) / (d mu / d eta), and for the
beta-binomial the Pearson residual divides by its variance, mu (1 - mu) (1 + (m - 1) /
(phi + 1)) / m (glmmTMB's); the deviance residual is the binomial's for every family."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.results.base import ResultBase

FloatArray = NDArray[np.float64]

TYPES = ("deviance", "pearson", "response", "working")


def residuals(result: ResultBase, type: str = "deviance") -> FloatArray:
    """Residuals of the observed proportions y = successes / trials, m the trials and mu the
    fitted probabilities: "deviance" (signed square roots of the deviance contributions),
    "pearson" ((y - mu) / sqrt(mu (1 - mu) / m)), "response" (y - mu) or "working"
    ((y - mu) / (d mu / d eta), (y - mu) / (mu (1 - mu)) for the logit), as lme4's residuals()
    for glmer.

    Computed from mu and 1 - mu each accurate on its own (y - mu as y (1 - mu) - (1 - y) mu), so
    that a fitted probability that rounds to 1 (a category with successes only, eta above 37)
    gives the residual's small value there, not 0 / 0; a residual is infinite only where mu or
    1 - mu underflows against an observation on the other side."""
    if type not in TYPES:
        raise ValueError(f"type must be one of {', '.join(map(repr, TYPES))}, got {type!r}")
    model = result.model
    m = model.trials
    y = model.successes / m
    family = result.fitted_family
    eta = np.asarray(result.predict(re="include", type="link"), dtype=np.float64)
    mu, complement, slope = family.mean_complement_slope(eta)
    difference = y * complement - (1.0 - y) * mu
    if type == "response":
        return difference
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if type == "working":
            return difference / slope
        if type == "pearson":
            # (y - mu) / sqrt(mu (1 - mu)) = y sqrt((1 - mu) / mu) - (1 - y) sqrt(mu / (1 - mu)),
            # each term only where its weight is not zero (0 * inf is no residual).
            high = np.where(y > 0.0, y * np.sqrt(complement / mu), 0.0)
            low = np.where(y < 1.0, (1.0 - y) * np.sqrt(mu / complement), 0.0)
            scale = m / family.variance_factor(m) if family.n_parameters else m
            return np.asarray((high - low) * np.sqrt(scale))
        # Binomial deviance contribution 2 m [y log(y / mu) + (1 - y) log((1 - y) / (1 - mu))],
        # with -log mu = log1p((1 - mu) / mu) (and the same for 1 - mu): not 0 where mu rounds
        # to 1.
        from scipy.special import xlogy  # here only: its import costs a first call 0.15 s

        high = np.where(y > 0.0, y * np.log1p(complement / mu), 0.0)
        low = np.where(y < 1.0, (1.0 - y) * np.log1p(mu / complement), 0.0)
        inside = xlogy(y, y) + xlogy(1 - y, 1 - y) + high + low
        contribution = 2.0 * m * inside
        return np.asarray(np.sign(difference) * np.sqrt(np.clip(contribution, 0.0, None)))
