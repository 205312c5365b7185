"""Fitted probabilities and residuals of a fit, on the proportion scale (as lme4's for glmer).

For links other than the logit the working residual is (y - mu) / (d mu / d eta), and for the
beta-binomial the Pearson residual divides by its variance, mu (1 - mu) (1 + (m - 1) /
(phi + 1)) / m (glmmTMB's); the deviance residual is the binomial's for every family."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.results.base import ResultBase

FloatArray = NDArray[np.float64]

TYPES = ("deviance", "pearson", "response", "working")


def fitted_probabilities(result: ResultBase) -> FloatArray:
    """expit(X beta + offset + Z b) with b the conditional modes, in the fit's row order
    (result.fitted())."""
    return result.fitted()


def residuals(result: ResultBase, type: str = "deviance") -> FloatArray:
    """Residuals of the observed proportions y = successes / trials, m the trials and mu the
    fitted probabilities: "deviance" (signed square roots of the deviance contributions),
    "pearson" ((y - mu) / sqrt(mu (1 - mu) / m)), "response" (y - mu) or "working"
    ((y - mu) / (mu (1 - mu))), as lme4's residuals() for glmer."""
    if type not in TYPES:
        raise ValueError(f"type must be one of {', '.join(map(repr, TYPES))}, got {type!r}")
    model = result.model
    m = model.trials
    y = model.successes / m
    mu = fitted_probabilities(result)
    if type == "response":
        return y - mu
    variance = mu * (1.0 - mu)
    family = result.fitted_family
    # A fitted probability of exactly 0 or 1 (a separated fit) gives NaN, not a warning.
    with np.errstate(divide="ignore", invalid="ignore"):
        if type == "working":
            if family.link != "logit":
                eta = np.asarray(result.predict(re="include", type="link"), dtype=np.float64)
                return (y - mu) / family.mu_eta(eta)
            return (y - mu) / variance
        if type == "pearson":
            if family.n_parameters:
                variance = variance * family.variance_factor(m)
            return (y - mu) / np.sqrt(variance / m)
        # Binomial deviance contribution 2 m [y log(y / mu) + (1 - y) log((1 - y) / (1 - mu))].
        from scipy.special import xlogy  # here only: its import costs a first call 0.15 s

        inside = xlogy(y, y) - xlogy(y, mu) + xlogy(1 - y, 1 - y) - xlogy(1 - y, 1 - mu)
        contribution = 2.0 * m * inside
        return np.asarray(np.sign(y - mu) * np.sqrt(np.clip(contribution, 0.0, None)))
