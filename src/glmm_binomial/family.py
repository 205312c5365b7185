"""Binomial family with the logit link, written to be safe for large |eta|.

All functions work row-wise on float64 arrays: ``successes`` k and ``trials`` m (prior weights
already folded into both), and the linear predictor ``eta`` on the logit scale.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, gammaln

FloatArray = NDArray[np.float64]


def inverse_link(eta: FloatArray) -> FloatArray:
    """Mean mu = 1 / (1 + exp(-eta)) on the probability scale."""
    return np.asarray(expit(eta), dtype=np.float64)


def log1pexp(eta: FloatArray) -> FloatArray:
    """log(1 + exp(eta)) without overflow for large eta."""
    return np.logaddexp(0.0, eta)


def loglik_kernel(eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
    """Row log-likelihood without the binomial coefficient: k * eta - m * log(1 + e^eta)."""
    return successes * eta - trials * log1pexp(eta)


def log_binomial_coefficient(successes: FloatArray, trials: FloatArray) -> float:
    """Sum of log C(m, k) over rows: the constant that makes the log-likelihood lme4's."""
    return float(
        np.sum(gammaln(trials + 1.0) - gammaln(successes + 1.0) - gammaln(trials - successes + 1.0))
    )


def working_weights(mu: FloatArray, trials: FloatArray) -> FloatArray:
    """Fisher weights m * mu * (1 - mu): minus the second derivative of the row log-likelihood."""
    return trials * mu * (1.0 - mu)
