"""FitOutput: what every estimation method (Laplace, AGQ, variational) hands to GLMMResult."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.optimize import OptSummary

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class FitOutput:
    """Estimates of one fit, on the scales the result object reports.

    theta: relative covariance factors in lme4's layout (ModelData.theta_slices); the random
        effects of block t have covariance Lambda_t Lambda_t' (the binomial GLMM has no residual
        scale, so relative = absolute). For "vb", theta holds the random-effect SDs at the
        posterior means of the log-SD parameters.
    beta: fixed effects (posterior means for "vb"); vcov_beta their covariance matrix
        (inverse observed information, or posterior covariance for "vb").
    loglik: marginal log-likelihood of the binomial GLMM at (theta, beta), binomial
        coefficients included; loglik_label says how it was computed.
    ranef / ranef_cov: per block, conditional modes b = Lambda u (n_levels x k) and their
        conditional covariances (n_levels x k x k); posterior means and covariances for "vb".
    theta_cov: covariance of theta's estimate where the method gives one (vb: of the log SDs).
    """

    method: str
    theta: FloatArray
    beta: FloatArray
    vcov_beta: FloatArray
    loglik: float
    loglik_label: str
    ranef: tuple[FloatArray, ...]
    ranef_cov: tuple[FloatArray, ...]
    opt_summary: OptSummary
    converged: bool
    singular: bool
    n_agq: int = 1
    theta_cov: FloatArray | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
