"""The response distribution and link: the one place the numerics take them from.

A ``Family`` object gives everything the methods need from the distribution of a row given its
linear predictor eta: the row log-likelihood (binomial coefficients excluded), its first
derivative (the residual of the mode equation), the weights of penalized IRLS (minus its second
derivative) and their derivative in eta (for the exact gradient of the Laplace and AGQ
deviances), the inverse link, and simulated responses. ``BINOMIAL_LOGIT`` is the binomial
family with the logit link, the canonical one (so its weights are also the Fisher weights).
Every ModelData carries its family.

The functions below it work row-wise on float64 arrays: ``successes`` k and ``trials`` m (prior
weights already folded into both), and the linear predictor ``eta`` on the logit scale, written
to be safe for large |eta|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, gammaln

FloatArray = NDArray[np.float64]


def inverse_link(eta: FloatArray) -> FloatArray:
    """Mean mu = 1 / (1 + exp(-eta)) on the probability scale."""
    return np.asarray(expit(eta), dtype=np.float64)


def logistic(
    eta: FloatArray, scratch: tuple[FloatArray, FloatArray] | None = None
) -> tuple[FloatArray, FloatArray]:
    """mu = expit(eta) and log(1 + exp(eta)), both from one exponential.

    With e = exp(-|eta|) in (0, 1] and q = e / (1 + e) = expit(-|eta|) <= 1/2:
    log(1 + e^eta) = max(eta, 0) + log1p(e), and mu = q for eta < 0, 1 - q otherwise (written
    without np.where, which is slow). Relative accuracy is that of expit; np.logaddexp plus
    expit cost four times as much on large arrays.

    scratch: two float arrays shaped like eta to work in (the second one is returned as
    log(1 + e^eta)), so that repeated calls on large arrays do not allocate fresh pages.
    """
    if scratch is None:
        scratch = (np.empty_like(eta), np.empty_like(eta))
    e, log1p_exp = scratch
    mu = np.empty_like(eta)
    np.abs(eta, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.maximum(eta, 0.0, out=log1p_exp)
    np.log1p(e, out=mu)
    log1p_exp += mu
    np.add(e, 1.0, out=mu)
    np.divide(e, mu, out=mu)  # q
    np.multiply(mu, -2.0, out=e)
    e += 1.0
    e *= eta >= 0.0
    mu += e
    return mu, log1p_exp


def loglik_kernel(eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
    """Row log-likelihood without the binomial coefficient: k * eta - m * log(1 + e^eta)."""
    return successes * eta - trials * logistic(eta)[1]


def log_binomial_coefficient(successes: FloatArray, trials: FloatArray) -> float:
    """Sum of log C(m, k) over rows: the constant that makes the log-likelihood lme4's."""
    # Rows with one trial contribute log C(1, k) = 0: skip them (Bernoulli data is common).
    many = trials != 1.0
    if not np.any(many):
        return 0.0
    m, k = trials[many], successes[many]
    return float(np.sum(gammaln(m + 1.0) - gammaln(k + 1.0) - gammaln(m - k + 1.0)))


def working_weights(mu: FloatArray, trials: FloatArray) -> FloatArray:
    """Fisher weights m * mu * (1 - mu): minus the second derivative of the row log-likelihood."""
    return trials * mu * (1.0 - mu)


def weights_and_residual(
    mu: FloatArray, successes: FloatArray, trials: FloatArray, unit_trials: bool
) -> tuple[FloatArray, FloatArray]:
    """Fisher weights m mu (1 - mu) and residuals k - m mu; unit_trials (every m = 1, Bernoulli
    rows) skips the products by m."""
    if unit_trials:
        return mu * (1.0 - mu), successes - mu
    return working_weights(mu, trials), successes - trials * mu


@dataclass(frozen=True)
class BinomialLogit:
    """Binomial family with the logit link: l_i(eta) = k_i eta - m_i log(1 + e^eta), mu = expit.

    Methods work row-wise (broadcasting: eta may carry a trailing axis of quadrature nodes when k
    and m are given as columns)."""

    name: str = "binomial"
    link: str = "logit"
    latent_variance: float = float(np.pi**2 / 3.0)
    """Variance of the latent error distribution on the link scale (the logistic
    distribution's pi^2 / 3): the distribution-specific variance of Nakagawa's R2."""

    def inverse_link(self, eta: FloatArray) -> FloatArray:
        """mu = P(success) at eta."""
        return inverse_link(eta)

    def mu_eta(self, eta: FloatArray) -> FloatArray:
        """d mu / d eta = mu (1 - mu) (the delta method's factor on the response scale)."""
        mu = inverse_link(np.asarray(eta, dtype=np.float64))
        return mu * (1.0 - mu)

    def mean_and_loglik(
        self,
        eta: FloatArray,
        successes: FloatArray,
        trials: FloatArray,
        scratch: tuple[FloatArray, FloatArray] | None = None,
    ) -> tuple[FloatArray, float]:
        """mu at eta and sum_i l_i(eta_i) (binomial coefficients excluded), for 1-d eta."""
        mu, log1p_exp = logistic(eta, scratch)
        # Dot products: no n-length temporaries for the sums.
        return mu, float(successes @ eta - trials @ log1p_exp)

    def loglik_rows(self, eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
        """l_i(eta) row by row (eta may be 2-d, rows x nodes, with k and m as columns)."""
        return loglik_kernel(eta, successes, trials)

    def loglik_and_residual_rows(
        self,
        eta: FloatArray,
        successes: FloatArray,
        trials: FloatArray,
        scratch: tuple[FloatArray, FloatArray],
    ) -> tuple[FloatArray, FloatArray]:
        """l_i(eta) and l_i'(eta) = k - m mu row by row for a large 2-d eta (rows x nodes, k and
        m as columns): l overwrites eta and the two scratch arrays (shaped like eta) are worked
        in, so only l' is a new array."""
        residual, log1p_exp = logistic(eta, scratch)
        log1p_exp *= trials
        eta *= successes
        eta -= log1p_exp
        residual *= -trials  # mu, turned into k - m mu in place
        residual += successes
        return eta, residual

    def weights_and_residual(
        self,
        eta: FloatArray,
        mu: FloatArray,
        successes: FloatArray,
        trials: FloatArray,
        unit_trials: bool = False,
    ) -> tuple[FloatArray, FloatArray]:
        """w_i = -l_i''(eta) = m mu (1 - mu) and r_i = l_i'(eta) = k - m mu; unit_trials (every
        m = 1) skips the products by m."""
        return weights_and_residual(mu, successes, trials, unit_trials)

    def residual(self, eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
        """l_i'(eta) = k - m mu (broadcasting)."""
        return successes - trials * inverse_link(eta)

    def weight_slope(self, eta: FloatArray, mu: FloatArray, weights: FloatArray) -> FloatArray:
        """dw_i / deta_i = w_i (1 - 2 mu_i), given the weights at eta."""
        return weights * (1.0 - 2.0 * mu)

    def simulate(self, eta: FloatArray, trials: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Successes ~ Binomial(trials, mu(eta)), as floats; trials must be whole numbers."""
        whole = np.round(trials)
        if not np.allclose(trials, whole):
            raise ValueError("simulate needs whole numbers of trials (weights)")
        return rng.binomial(whole.astype(np.int64), inverse_link(eta)).astype(np.float64)


BINOMIAL_LOGIT = BinomialLogit()
"""The binomial family with the logit link (every model's family today)."""

Family = BinomialLogit
"""The type of a family object (the families and links to come share BinomialLogit's methods)."""
