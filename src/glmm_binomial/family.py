"""The response distribution and link: the one place the numerics take them from.

A ``Family`` object gives everything the methods need from the distribution of a row given its
linear predictor eta: the row log-likelihood l(eta) (binomial coefficients excluded), its first
derivative l' (the residual of the mode equation), the weights of penalized IRLS w = -l'' (the
OBSERVED information, so that the Laplace approximation's log-determinant is that of the exact
Hessian, as glmmTMB's) and their derivative dw/deta (the exact gradient of the Laplace and AGQ
deviances), the inverse link, and simulated responses. Every ModelData carries its family.

Families and links (``make_family``; R's spelling ``"binomial(link = 'probit')"`` is read too):

* ``BinomialLogit`` (``BINOMIAL_LOGIT``): the binomial family with the canonical logit link, whose
  observed and Fisher weights coincide. Its code path is the one every fit used before the
  other links, unchanged.
* ``Binomial(link)`` for the links "probit", "cloglog", "cauchit" and "log":
  l = k log mu + (m - k) log(1 - mu), mu = F(eta). log mu and log(1 - mu) are computed without
  forming 1 - mu where that loses digits: the probit from erfcx (one call gives Phi(-|eta|),
  phi/Phi on both sides and their logs: exact at eta = -40), the cauchit from atan2, the
  cloglog from exp/expm1 (log(1 - mu) = -e^eta; eta is held to [-700, 700], where mu is 0 or 1
  to double precision, so that exp neither overflows nor underflows), the log link from expm1.
  Observed weights are non-negative for the logit, probit, cloglog and log links (their l is
  concave in eta); the cauchit's can be negative far from the data (``log_concave`` False),
  and PIRLS then safeguards its Newton steps (numerics.pirls).
* The log link needs mu = e^eta <= 1: its row log-likelihood is -inf where eta > 0 (zero
  likelihood, so PIRLS's step halving and the optimizer's line search stay where eta <= 0), and
  ``eta_upper`` = 0 tells the GLM start to keep its steps there.
* ``BetaBinomial(link, phi)``: glmmTMB's beta-binomial, k | p ~ Binomial(m, p),
  p ~ Beta(mu phi, (1 - mu) phi): mean m mu, variance m mu (1 - mu) (1 + (m - 1) / (phi + 1)).
  phi is a parameter of the family (``n_parameters`` = 1, on the optimizer's scale log phi,
  appended to theta: ModelData.family_slice); ``with_parameters`` gives the family at a value
  and ``parameter_rows`` the derivatives in log phi the exact gradient needs.

The row functions work on float64 arrays: ``successes`` k and ``trials`` m (prior weights
already folded into both), and the linear predictor ``eta`` (broadcasting: eta may carry a
trailing axis of quadrature nodes when k and m are given as columns).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

LINKS = ("logit", "probit", "cloglog", "cauchit", "log")
"""The links of the binomial and beta-binomial families, as R names them."""

FAMILIES = ("binomial", "betabinomial")
"""The families, as R (stats::binomial, glmmTMB::betabinomial) names them."""


def special_functions() -> ModuleType:
    """scipy.special, imported on first use: the binomial logit on whole-number counts does
    not need it, and its import costs a first call about 0.15 s."""
    import scipy.special

    return scipy.special


def inverse_link(eta: FloatArray) -> FloatArray:
    """Mean mu = 1 / (1 + exp(-eta)) on the probability scale (the logit link)."""
    return logistic(np.asarray(eta, dtype=np.float64))[0]


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
    if not many.any():
        return 0.0
    m, k = trials[many], successes[many]
    arguments = np.concatenate([m + 1.0, k + 1.0, m - k + 1.0])
    logs = small_lgamma_values(arguments)
    if logs is None and arguments.size <= LGAMMA_DIRECT_LIMIT:
        # Few rows: lgamma of each argument (sorting out the distinct ones costs more).
        logs = np.array([math.lgamma(v) for v in arguments.tolist()])
    elif logs is None:
        values, where = np.unique(arguments, return_inverse=True)
        if len(values) <= LGAMMA_TABLE_LIMIT:
            # Few distinct counts (as in most aggregated data): lgamma of each from the
            # standard library, without importing scipy.special.
            table = np.array([math.lgamma(v) for v in values.tolist()])
            logs = table[where]
        else:
            logs = special_functions().gammaln(arguments)
    size = len(m)
    return float((logs[:size] - logs[size : 2 * size] - logs[2 * size :]).sum())


SMALL_LGAMMA_LIMIT = 1024
"""log_binomial_coefficient looks up lgamma(v) for whole v below this in a table of
math.lgamma's values made once per process."""


def small_lgamma_values(arguments: FloatArray) -> FloatArray | None:
    """math.lgamma of each argument when all are whole numbers from 1 to SMALL_LGAMMA_LIMIT - 1
    (counts plus one: nearly all aggregated data), looked up; None otherwise."""
    if not (SMALL_LGAMMA_LIMIT > float(arguments.max()) and float(arguments.min()) >= 1.0):
        return None
    whole = arguments.astype(np.intp)
    if not (whole == arguments).all():
        return None
    return small_lgamma_table()[whole]


@functools.lru_cache(maxsize=1)
def small_lgamma_table() -> FloatArray:
    """math.lgamma(v) for v = 0, 1, ..., SMALL_LGAMMA_LIMIT - 1 (read only; lgamma(0) = inf,
    never looked up: the arguments are counts plus one)."""
    table = np.array([float("inf")] + [math.lgamma(v) for v in range(1, SMALL_LGAMMA_LIMIT)])
    table.flags.writeable = False
    return table


LGAMMA_DIRECT_LIMIT = 600
"""log_binomial_coefficient takes lgamma of every argument (3 per row) up to this many, without
first finding the distinct ones."""

LGAMMA_TABLE_LIMIT = 10_000
"""log_binomial_coefficient takes lgamma value by value (math.lgamma) up to this many distinct
arguments, scipy.special.gammaln on the whole array beyond."""


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


def whole_trials(trials: FloatArray) -> NDArray[np.int64]:
    """trials as integers for simulation; ValueError unless they are whole numbers."""
    whole = np.round(trials)
    if not np.allclose(trials, whole):
        raise ValueError("simulate needs whole numbers of trials (weights)")
    return whole.astype(np.int64)


class Family:
    """The distribution of a row given eta and the link (the interface PIRLS, the gradients,
    AGQ, the GLM start, simulate and the results use).

    name, link: as R names them ("binomial", "probit"). latent_variance: the variance of the
    link's latent error distribution (logistic pi^2 / 3, normal 1, Gumbel pi^2 / 6; NaN where
    none is defined), the distribution-specific variance of Nakagawa's R2. log_concave: the row
    log-likelihood is concave in eta for every k (observed weights never negative).
    eta_upper: eta must stay at or below it (0 for the log link, else inf). n_parameters:
    parameters of the family estimated with theta and beta (beta-binomial: log phi)."""

    name: str
    link: str
    latent_variance: float
    n_parameters: ClassVar[int] = 0
    parameter_names: ClassVar[tuple[str, ...]] = ()

    @property
    def log_concave(self) -> bool:
        return _LINK_FUNCTIONS[self.link].log_concave

    @property
    def eta_upper(self) -> float:
        return _LINK_FUNCTIONS[self.link].eta_upper

    @property
    def title(self) -> str:
        """The family line of a summary, as lme4 prints it: "binomial  ( probit )"."""
        return f"{self.name}  ( {self.link} )"

    @property
    def start_family(self) -> Family:
        """The family of the fixed-effects-only GLM that gives the starting values."""
        return self

    @property
    def start_scale(self) -> float:
        """The random-effect SDs start at this times lme4's start (Lambda = I): the ratio of
        the link's latent SD to the logistic's (probit 0.55, cloglog 0.71), so that the start
        is as far from a typical fit on every link's scale; 1 where the link has no latent
        distribution of its own."""
        variance = _LINK_FUNCTIONS[self.link].latent_variance
        if self.link == "logit" or not np.isfinite(variance):
            return 1.0
        return float(np.sqrt(variance / (np.pi**2 / 3.0)))

    def inverse_link(self, eta: FloatArray) -> FloatArray:
        """mu = F(eta), the mean of a proportion."""
        return _LINK_FUNCTIONS[self.link].inverse(np.asarray(eta, dtype=np.float64))

    def mu_eta(self, eta: FloatArray) -> FloatArray:
        """d mu / d eta (the delta method's factor on the response scale)."""
        return _LINK_FUNCTIONS[self.link].mu_eta(np.asarray(eta, dtype=np.float64))

    def mean_complement_slope(self, eta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """mu = F(eta), 1 - mu and d mu / d eta, each accurate on its own: 1 - mu and the slope
        are not rounded to zero where mu rounds to 1 (eta above 37 for the logit)."""
        values = _LINK_FUNCTIONS[self.link].mean_derivatives(np.asarray(eta, dtype=np.float64))
        return values[0], values[1], values[2]

    def link_function(self, mu: float) -> float:
        """eta = F^{-1}(mu) for a probability mu in (0, 1)."""
        return float(_LINK_FUNCTIONS[self.link].link_values(np.asarray(mu, dtype=np.float64)))

    def link_values(self, mu: FloatArray) -> FloatArray:
        """eta = F^{-1}(mu) element by element."""
        return _LINK_FUNCTIONS[self.link].link_values(np.asarray(mu, dtype=np.float64))

    def variance_factor(self, trials: FloatArray) -> FloatArray | float:
        """Var(k) / (m mu (1 - mu)): 1 for the binomial."""
        return 1.0

    def check_data(self, successes: FloatArray, trials: FloatArray) -> None:
        """ValueError when the family cannot be fitted to these rows."""

    def parameters(self) -> FloatArray:
        """The family's parameters on the optimizer's scale (empty for the binomial)."""
        return np.zeros(0)

    def parameter_lower_bounds(self) -> FloatArray:
        return np.full(self.n_parameters, -np.inf)

    def parameter_limits(self) -> FloatArray:
        """Where each parameter (optimizer's scale) reaches a limit at which the family is
        another one to rounding (the beta-binomial's log phi: the binomial), NaN where it has
        none. An optimum beyond it is reported at it, as on the boundary."""
        return np.full(self.n_parameters, np.nan)

    def parameter_near_limit(self, values: FloatArray, tol: float) -> NDArray[np.bool_]:
        """Which parameters (optimizer's scale) are within `tol` of their limit on the
        family's own scale (the beta-binomial: overdispersion 1 / phi below tol); none for a
        family without limits."""
        return np.zeros(len(values), dtype=bool)

    def parameter_restarts(self) -> FloatArray:
        """Where a search starts a parameter given at its limit (a refit from such estimates:
        out there the deviance is flat in it), NaN where it has no limit."""
        return np.full(self.n_parameters, np.nan)

    def with_parameters(self, values: FloatArray) -> Family:
        """The family at `values` (its parameters on the optimizer's scale)."""
        return self

    def start_parameters(
        self, eta: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> FloatArray:
        """Starting values of the parameters given a GLM's linear predictor."""
        return self.parameters_from_moments(self.start_moments(eta, successes, trials))

    def start_moments(
        self, eta: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> FloatArray:
        """The sums over the rows that start_parameters reads (about a GLM's linear predictor
        eta): sums over parts of the rows add up to the whole's (a Dask fit's partitions)."""
        return np.zeros(0)

    def parameters_from_moments(self, moments: FloatArray) -> FloatArray:
        """start_parameters from start_moments' sums over all rows."""
        return np.zeros(0)

    # --- row functions (every family implements these) ---------------------------------------
    def mean_and_loglik(
        self,
        eta: FloatArray,
        successes: FloatArray,
        trials: FloatArray,
        scratch: tuple[FloatArray, FloatArray] | None = None,
    ) -> tuple[FloatArray, float]:
        """mu at eta and sum_i l_i(eta_i) (binomial coefficients excluded), for 1-d eta."""
        raise NotImplementedError

    def loglik_rows(self, eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
        """l_i(eta) row by row (broadcasting)."""
        raise NotImplementedError

    def loglik_and_residual_rows(
        self,
        eta: FloatArray,
        successes: FloatArray,
        trials: FloatArray,
        scratch: tuple[FloatArray, FloatArray],
    ) -> tuple[FloatArray, FloatArray]:
        """l_i(eta) and l_i'(eta) row by row for a large 2-d eta (eta may be overwritten)."""
        return self.loglik_rows(eta, successes, trials), self.residual(eta, successes, trials)

    def weights_and_residual(
        self,
        eta: FloatArray,
        mu: FloatArray,
        successes: FloatArray,
        trials: FloatArray,
        unit_trials: bool = False,
    ) -> tuple[FloatArray, FloatArray]:
        """Observed weights w_i = -l_i''(eta) and residuals r_i = l_i'(eta) (mu: the mean at
        eta, as mean_and_loglik returned it)."""
        raise NotImplementedError

    def fisher_weights_and_residual(
        self, eta: FloatArray, mu: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Expected (Fisher) weights m mu'^2 / (mu (1 - mu)), never negative, and l'(eta): the
        GLM start's scoring iteration."""
        raise NotImplementedError

    def residual(self, eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
        """l_i'(eta) (broadcasting)."""
        raise NotImplementedError

    def weight_slope(
        self,
        eta: FloatArray,
        mu: FloatArray,
        weights: FloatArray,
        successes: FloatArray | None = None,
        trials: FloatArray | None = None,
    ) -> FloatArray:
        """dw_i / deta_i = -l_i'''(eta) given the weights at eta (broadcasting); successes and
        trials are needed by every family but the logit."""
        raise NotImplementedError

    def parameter_rows(
        self, eta: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """For a family with one parameter p (n_parameters = 1): dl/dp, dl'/dp and dw/dp row by
        row (p on the optimizer's scale)."""
        raise ValueError(f"the {self.name} family has no parameters")

    def parameter_loglik_rows(
        self, eta: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> FloatArray:
        """dl/dp row by row (broadcasting), p the family's parameter on the optimizer's scale."""
        raise ValueError(f"the {self.name} family has no parameters")

    def simulate(self, eta: FloatArray, trials: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Successes drawn given eta (as floats); trials must be whole numbers."""
        raise NotImplementedError


@dataclass(frozen=True)
class BinomialLogit(Family):
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

    def link_function(self, mu: float) -> float:
        """log(mu / (1 - mu))."""
        return float(np.log(mu / (1.0 - mu)))

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

    def fisher_weights_and_residual(
        self, eta: FloatArray, mu: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """The canonical link: the Fisher weights are the observed ones."""
        return weights_and_residual(mu, successes, trials, False)

    def residual(self, eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
        """l_i'(eta) = k - m mu (broadcasting)."""
        return successes - trials * inverse_link(eta)

    def weight_slope(
        self,
        eta: FloatArray,
        mu: FloatArray,
        weights: FloatArray,
        successes: FloatArray | None = None,
        trials: FloatArray | None = None,
    ) -> FloatArray:
        """dw_i / deta_i = w_i (1 - 2 mu_i), given the weights at eta."""
        return weights * (1.0 - 2.0 * mu)

    def simulate(self, eta: FloatArray, trials: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Successes ~ Binomial(trials, mu(eta)), as floats; trials must be whole numbers."""
        whole = np.round(trials)
        if not np.allclose(trials, whole):
            raise ValueError("simulate needs whole numbers of trials (weights)")
        return rng.binomial(whole.astype(np.int64), inverse_link(eta)).astype(np.float64)


BINOMIAL_LOGIT = BinomialLogit()
"""The binomial family with the logit link (the default family of every model)."""


# --- links -----------------------------------------------------------------------------------


class LinkFunctions:
    """One link's inverse F and its derivatives, and the binomial row likelihood under it.

    ``binomial_loglik`` gives l row by row (broadcasting), ``loglik_sum`` its sum over 1-d
    rows with mu, ``binomial_derivatives`` l', w = -l'' and (slope) dw/deta, ``evaluate`` the
    sum, mu, l' and w at once (PIRLS's call: a link may share the work), and
    ``binomial_fisher`` the Fisher weight per trial mu'^2 / (mu (1 - mu))."""

    name: ClassVar[str]
    eta_upper: ClassVar[float] = float("inf")
    latent_variance: ClassVar[float] = float("nan")
    log_concave: ClassVar[bool] = True
    interior: ClassVar[tuple[float, float]] = (-184.0, 184.0)
    """The eta where mu and 1 - mu both exceed 1e-80 (the beta-binomial's derivatives are
    evaluated there: beyond, a = mu phi or b = (1 - mu) phi is so small that trigamma and
    tetragamma overflow)."""

    def inverse(self, eta: FloatArray) -> FloatArray:
        return self.mean_derivatives(eta)[0]

    def mu_eta(self, eta: FloatArray) -> FloatArray:
        return self.mean_derivatives(eta)[2]

    def link_values(self, mu: FloatArray) -> FloatArray:
        """eta = F^{-1}(mu) element by element."""
        raise NotImplementedError

    def mean_derivatives(
        self, eta: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """mu, 1 - mu (each accurate on its own), d mu / d eta and its next two derivatives."""
        raise NotImplementedError

    def binomial_loglik(self, eta: FloatArray, k: FloatArray, m: FloatArray) -> FloatArray:
        raise NotImplementedError

    def loglik_sum(self, eta: FloatArray, k: FloatArray, m: FloatArray) -> tuple[float, FloatArray]:
        """sum_i l_i and mu at 1-d eta."""
        return float(self.binomial_loglik(eta, k, m).sum()), self.inverse(eta)

    def evaluate(
        self, eta: FloatArray, k: FloatArray, m: FloatArray
    ) -> tuple[float, FloatArray, FloatArray, FloatArray]:
        """sum_i l_i, mu, l' and w at 1-d eta at once (PIRLS needs the weights at nearly every
        point whose log-likelihood it computes; a link may share the work)."""
        value, mu = self.loglik_sum(eta, k, m)
        residual, weights, _ = self.binomial_derivatives(eta, k, m, False)
        return value, mu, residual, weights

    def binomial_derivatives(
        self,
        eta: FloatArray,
        k: FloatArray,
        m: FloatArray,
        slope: bool,
    ) -> tuple[FloatArray, FloatArray, FloatArray | None]:
        """l', w = -l'' and (slope) dw/deta."""
        raise NotImplementedError

    def binomial_fisher(self, eta: FloatArray) -> FloatArray:
        raise NotImplementedError

    bernoulli_kernels: ClassVar[bool] = False
    """Whether the link has evaluate_bernoulli and slope_bernoulli: the same for 0/1 rows with
    one trial, from sign = 2 k - 1, in about half the operations."""

    def evaluate_bernoulli(
        self, eta: FloatArray, sign: FloatArray
    ) -> tuple[float, FloatArray, FloatArray, FloatArray]:
        raise NotImplementedError

    def slope_bernoulli(
        self,
        eta: FloatArray,
        sign: FloatArray,
        kept: tuple[FloatArray, FloatArray] | None = None,
    ) -> FloatArray:
        raise NotImplementedError


class _SymmetricLink(LinkFunctions):
    """A link whose F is the CDF of a symmetric density f (F(-x) = 1 - F(x)): probit, cauchit.

    With a = |eta|, everything follows from the lower tail F(-a) (never rounded to 1):
        l = kk log F(a) + (m - kk) log F(-a),   kk = k if eta >= 0 else m - k,
    and with h(x) = f(x) / F(x) = (log F)'(x), c(x) = -f'(x) / f(x), g(x) = -h'(x) = h (c + h),
    g'(x) = -g (c + h) + h (c' - g), sigma = sign(eta):
        l' = sigma (kk h(a) - (m - kk) h(-a)),  w = kk g(a) + (m - kk) g(-a),
        dw/deta = sigma (kk g'(a) - (m - kk) g'(-a))."""

    def log_tails(self, a: FloatArray) -> tuple[FloatArray, FloatArray]:
        """log F(-a) and log F(a) for a >= 0."""
        raise NotImplementedError

    def ratio_tails(self, a: FloatArray) -> tuple[FloatArray, FloatArray]:
        """h(-a) and h(a) for a >= 0."""
        raise NotImplementedError

    def shape(self, x: FloatArray) -> tuple[FloatArray, FloatArray | float]:
        """c(x) = -f'(x) / f(x) and its derivative c'(x)."""
        raise NotImplementedError

    def binomial_loglik(self, eta: FloatArray, k: FloatArray, m: FloatArray) -> FloatArray:
        log_low, log_high = self.log_tails(np.abs(eta))
        kk = np.where(eta >= 0.0, k, m - k)
        return np.asarray(kk * log_high + (m - kk) * log_low)

    def binomial_derivatives(
        self,
        eta: FloatArray,
        k: FloatArray,
        m: FloatArray,
        slope: bool,
    ) -> tuple[FloatArray, FloatArray, FloatArray | None]:
        a = np.abs(eta)
        h_low, h_high = self.ratio_tails(a)
        positive = eta >= 0.0
        kk = np.where(positive, k, m - k)
        other = m - kk
        c_high, c_prime = self.shape(a)
        # g(-a) = h(-a) (h(-a) - c(a)) and g(a) = h(a) (c(a) + h(a)), c odd.
        low_shift = h_low - c_high
        high_shift = h_high + c_high
        g_low = h_low * low_shift
        g_high = h_high * high_shift
        residual = kk * h_high
        residual -= other * h_low
        np.negative(residual, out=residual, where=~positive)
        weights = kk * g_high
        weights += other * g_low
        if not slope:
            return residual, weights, None
        gp_low = h_low * (c_prime - g_low) - g_low * low_shift
        gp_high = h_high * (c_prime - g_high) - g_high * high_shift
        gradient = kk * gp_high
        gradient -= other * gp_low
        np.negative(gradient, out=gradient, where=~positive)
        return residual, weights, gradient

    def binomial_fisher(self, eta: FloatArray) -> FloatArray:
        # f^2 / (F (1 - F)) = h(eta) h(-eta).
        h_low, h_high = self.ratio_tails(np.abs(eta))
        return np.asarray(h_low * h_high)


SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


PROBIT_TAIL = 37.0
"""Up to |eta| = 37 the probit works with Phi(-a) = ndtr(-a) and exp(-a^2 / 2), both normal
doubles there (and ndtr costs a third of erfcx); beyond, where they underflow, log Phi(-a) and
phi(a) / Phi(-a) come from erfcx(a / sqrt 2) = 2 Phi(-a) exp(a^2 / 2), which stays finite."""


class ProbitLink(_SymmetricLink):
    """mu = Phi(eta). With a = |eta|, everything comes from Phi(-a) and exp(-a^2 / 2) (one
    ndtr and one exp per eta serve the log-likelihood and the weights in ``evaluate``);
    log Phi(-a) and h(-a) = phi(a) / Phi(-a) keep full precision at eta = -40 and beyond
    (PROBIT_TAIL)."""

    name = "probit"
    latent_variance = 1.0
    interior = (-18.9, 18.9)

    def link_values(self, mu: FloatArray) -> FloatArray:
        return np.asarray(special_functions().ndtri(mu), dtype=np.float64)

    def inverse(self, eta: FloatArray) -> FloatArray:
        return np.asarray(special_functions().ndtr(eta), dtype=np.float64)

    def mu_eta(self, eta: FloatArray) -> FloatArray:
        return np.asarray(INV_SQRT_2PI * np.exp(-0.5 * eta * eta))

    def mean_derivatives(
        self, eta: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        mu = special_functions().ndtr(eta)
        complement = special_functions().ndtr(-eta)
        d1 = INV_SQRT_2PI * np.exp(-0.5 * eta * eta)
        return mu, complement, d1, -eta * d1, (eta * eta - 1.0) * d1

    @staticmethod
    def state(a: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Phi(-a) and exp(-a^2 / 2) for a >= 0 (0 beyond PROBIT_TAIL)."""
        low = special_functions().ndtr(-a)
        gauss = a * a
        gauss *= -0.5
        return low, np.exp(gauss, out=gauss)

    @staticmethod
    def tail(a: FloatArray) -> tuple[NDArray[np.bool_], FloatArray] | None:
        """Where a is beyond PROBIT_TAIL (a mask of a's shape) and erfcx(a / sqrt 2) / 2 there,
        or None."""
        beyond = a > PROBIT_TAIL
        if not beyond.any():
            return None
        return beyond, 0.5 * special_functions().erfcx(SQRT_HALF * a[beyond])

    def log_tails(self, a: FloatArray) -> tuple[FloatArray, FloatArray]:
        low, _ = self.state(a)
        with np.errstate(divide="ignore"):
            log_low = np.log(low)
        far = self.tail(a)
        if far is not None:
            beyond, half_e1 = far
            log_low[beyond] = np.log(half_e1) - 0.5 * a[beyond] ** 2
        return log_low, np.log1p(-low)

    def evaluate(
        self, eta: FloatArray, k: FloatArray, m: FloatArray
    ) -> tuple[float, FloatArray, FloatArray, FloatArray]:
        a = np.abs(eta)
        low, gauss = self.state(a)
        far = self.tail(a)
        with np.errstate(divide="ignore", invalid="ignore"):  # only beyond PROBIT_TAIL
            log_low = np.log(low)
            h_low = gauss / low
        if far is not None:
            beyond, half_e1 = far
            log_low[beyond] = np.log(half_e1) - 0.5 * a[beyond] ** 2
            h_low[beyond] = 1.0 / half_e1
        h_low *= INV_SQRT_2PI
        high = np.subtract(1.0, low)  # Phi(a)
        difference = np.log1p(-low)
        difference -= log_low
        positive = eta >= 0.0
        kk = np.where(positive, k, m - k)
        value = float(m @ log_low + kk @ difference)
        h_high = np.divide(gauss, high, out=gauss)
        h_high *= INV_SQRT_2PI
        mu = np.where(positive, high, low)
        other = m - kk
        residual = kk * h_high
        residual -= other * h_low
        np.negative(residual, out=residual, where=~positive)
        # w = kk g(a) + other g(-a), g(a) = h(a) (a + h(a)), g(-a) = h(-a) (h(-a) - a).
        weights = np.add(h_high, a, out=high)
        weights *= h_high
        weights *= kk
        np.subtract(h_low, a, out=a)
        a *= h_low
        a *= other
        weights += a
        return value, mu, residual, weights

    bernoulli_kernels = True

    @staticmethod
    def signed(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Phi(x), log Phi(x) and h(x) = phi(x) / Phi(x) (below -PROBIT_TAIL from erfcx)."""
        p = special_functions().ndtr(x)
        gauss = x * x
        gauss *= -0.5
        np.exp(gauss, out=gauss)
        beyond = x < -PROBIT_TAIL
        if not beyond.any():
            log_p = np.log(p)
            h = np.divide(gauss, p, out=gauss)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_p = np.log(p)
                h = np.divide(gauss, p, out=gauss)
            half_e1 = 0.5 * special_functions().erfcx(-SQRT_HALF * x[beyond])
            log_p[beyond] = np.log(half_e1) - 0.5 * x[beyond] ** 2
            h[beyond] = 1.0 / half_e1
        h *= INV_SQRT_2PI
        return p, log_p, h

    def evaluate_bernoulli(
        self, eta: FloatArray, sign: FloatArray
    ) -> tuple[float, FloatArray, FloatArray, FloatArray]:
        """With x = sign eta: l = log Phi(x), l' = sign h(x), w = h(x) (x + h(x))."""
        x = eta * sign
        p, log_p, h = self.signed(x)
        mu = np.subtract(1.0, p)
        np.copyto(mu, p, where=sign > 0.0)
        value = float(log_p.sum())
        weights = np.add(x, h, out=x)
        weights *= h
        h *= sign
        return value, mu, h, weights

    def slope_bernoulli(
        self,
        eta: FloatArray,
        sign: FloatArray,
        kept: tuple[FloatArray, FloatArray] | None = None,
    ) -> FloatArray:
        """dw/deta = sign g'(x), g'(x) = h (1 - g) - g (x + h), g = h (x + h); kept: l' = sign h
        and w = g at this eta (evaluate_bernoulli's), which spare the ndtr."""
        x = eta * sign
        if kept is None:
            _, _, h = self.signed(x)
        else:
            h = kept[0] * sign
        shift = np.add(x, h, out=x)
        g = h * shift
        out = np.subtract(1.0, g)
        out *= h
        g *= shift
        out -= g
        out *= sign
        return out

    def ratio_tails(self, a: FloatArray) -> tuple[FloatArray, FloatArray]:
        low, gauss = self.state(a)
        # h(-a) = phi(a) / Phi(-a), h(a) = phi(a) / (1 - Phi(-a)).
        far = self.tail(a)
        if far is None:
            h_low = gauss / low
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                h_low = gauss / low
            beyond, half_e1 = far
            h_low[beyond] = 1.0 / half_e1
        h_low *= INV_SQRT_2PI
        h_high = np.subtract(1.0, low)
        np.divide(gauss, h_high, out=h_high)
        h_high *= INV_SQRT_2PI
        return h_low, h_high

    def shape(self, x: FloatArray) -> tuple[FloatArray, FloatArray | float]:
        return x, 1.0


class CauchitLink(_SymmetricLink):
    """mu = 1/2 + atan(eta) / pi = atan2(1, -eta) / pi, and 1 - mu = atan2(1, eta) / pi: each
    accurate without subtracting from 1/2."""

    name = "cauchit"
    log_concave = False  # the Cauchy CDF is not log-concave: observed weights can be < 0
    interior = (-1e79, 1e79)

    def link_values(self, mu: FloatArray) -> FloatArray:
        return np.asarray(np.tan(np.pi * (mu - 0.5)), dtype=np.float64)

    def inverse(self, eta: FloatArray) -> FloatArray:
        return np.asarray(np.arctan2(1.0, -eta) / np.pi)

    def mu_eta(self, eta: FloatArray) -> FloatArray:
        return np.asarray(1.0 / (np.pi * (1.0 + eta * eta)))

    def mean_derivatives(
        self, eta: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        one_plus = 1.0 + eta * eta
        d1 = 1.0 / (np.pi * one_plus)
        mu = np.arctan2(1.0, -eta) / np.pi
        complement = np.arctan2(1.0, eta) / np.pi
        return (
            mu,
            complement,
            d1,
            -2.0 * eta * d1 / one_plus,
            d1 * (6.0 * eta * eta - 2.0) / (one_plus * one_plus),
        )

    def log_tails(self, a: FloatArray) -> tuple[FloatArray, FloatArray]:
        log_pi = math.log(math.pi)
        # pi F(-a) = atan2(1, a), pi F(a) = atan2(1, -a).
        return np.log(np.arctan2(1.0, a)) - log_pi, np.log(np.arctan2(1.0, -a)) - log_pi

    def ratio_tails(self, a: FloatArray) -> tuple[FloatArray, FloatArray]:
        one_plus = 1.0 + a * a
        return 1.0 / (one_plus * np.arctan2(1.0, a)), 1.0 / (one_plus * np.arctan2(1.0, -a))

    def shape(self, x: FloatArray) -> tuple[FloatArray, FloatArray | float]:
        one_plus = 1.0 + x * x
        return 2.0 * x / one_plus, 2.0 * (1.0 - x * x) / (one_plus * one_plus)


CLOGLOG_ETA_LIMIT = 700.0
"""The cloglog link holds eta to [-700, 700] inside its row functions: e^eta neither overflows
nor underflows there, and beyond it mu is 0 or 1 to double precision."""
CLOGLOG_SUCCESS_LIMIT = 40.0
CLOGLOG_SUCCESS_T = math.exp(CLOGLOG_SUCCESS_LIMIT)
CLOGLOG_SERIES_T = 0.01
"""Below t = e^eta = 0.01 the cloglog's 1 - q - t (q = t / (e^t - 1)) is taken from its
series, whose first omitted term is below 1e-14 of it there; computed directly it loses its
digits (q = 1 - t / 2 + ... rounds to 1 when t < 1e-16)."""
"""Beyond eta = 40 the success terms of the cloglog derivatives (q = t / (e^t - 1) with
t = e^eta) are exactly 0 in double precision; holding eta there keeps their products finite."""


class CloglogLink(LinkFunctions):
    """mu = 1 - exp(-e^eta). With t = e^eta: log(1 - mu) = -t and log mu = log(-expm1(-t)),
    q = (log mu)' = t / (e^t - 1), q' = q (1 - q - t), q'' = q ((1 - q - t)^2 - q (1 - q - t) - t):
        l' = k q - (m - k) t,  w = -k q (1 - q - t) + (m - k) t,
        dw/deta = -k q ((1 - q - t)^2 - q (1 - q - t) - t) + (m - k) t."""

    name = "cloglog"
    latent_variance = float(np.pi**2 / 6.0)
    interior = (-184.0, 5.21)

    def link_values(self, mu: FloatArray) -> FloatArray:
        return np.asarray(np.log(-np.log1p(-mu)), dtype=np.float64)

    @staticmethod
    def _t(eta: FloatArray, limit: float = CLOGLOG_ETA_LIMIT) -> FloatArray:
        t = np.maximum(eta, -CLOGLOG_ETA_LIMIT)
        np.minimum(t, limit, out=t)
        return np.exp(t, out=t)

    def mean_derivatives(
        self, eta: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        t = self._t(eta)
        complement = np.exp(-t)
        t_success = self._t(eta, CLOGLOG_SUCCESS_LIMIT)  # d1 = t e^-t is 0 beyond it
        d1 = t_success * np.exp(-t_success)
        shift = 1.0 - t_success
        return -np.expm1(-t), complement, d1, d1 * shift, d1 * (shift * shift - t_success)

    def inverse(self, eta: FloatArray) -> FloatArray:
        return np.asarray(-np.expm1(-self._t(eta)))

    def binomial_loglik(self, eta: FloatArray, k: FloatArray, m: FloatArray) -> FloatArray:
        t = self._t(eta)
        return np.asarray(k * np.log(-np.expm1(-t)) - (m - k) * t)

    def loglik_sum(self, eta: FloatArray, k: FloatArray, m: FloatArray) -> tuple[float, FloatArray]:
        t = self._t(eta)
        mu = np.negative(t)
        np.expm1(mu, out=mu)
        np.negative(mu, out=mu)
        return float(k @ np.log(mu) - (m - k) @ t), mu

    def evaluate(
        self, eta: FloatArray, k: FloatArray, m: FloatArray
    ) -> tuple[float, FloatArray, FloatArray, FloatArray]:
        t = self._t(eta)
        mu = np.negative(t)
        np.expm1(mu, out=mu)
        np.negative(mu, out=mu)
        failures = m - k
        value = float(k @ np.log(mu) - failures @ t)
        failures *= t  # (m - k) t
        t_success = np.minimum(t, CLOGLOG_SUCCESS_T, out=t)
        with np.errstate(over="ignore"):  # e^t overflows beyond eta = 6.6: q is 0 there
            q = np.expm1(t_success)
        np.divide(t_success, q, out=q)
        residual = k * q
        residual -= failures
        # w = (m - k) t - k q (1 - q - t).
        shift = self._shift(q, t_success)
        shift *= q
        shift *= k
        return value, mu, residual, np.subtract(failures, shift, out=failures)

    @staticmethod
    def _shift(q: FloatArray, t: FloatArray) -> FloatArray:
        """1 - q - t without cancellation: below t = CLOGLOG_SERIES_T (where q rounds towards
        1) its series -t (1/2 + t / 12 - t^3 / 720)."""
        direct = np.subtract(1.0, q)
        direct -= t
        small = t < CLOGLOG_SERIES_T
        if small.any():
            near = t[small]
            direct[small] = -near * (0.5 + near * (1.0 / 12.0) - near**3 * (1.0 / 720.0))
        return direct

    def _q(self, eta: FloatArray) -> tuple[FloatArray, FloatArray]:
        t_success = self._t(eta, CLOGLOG_SUCCESS_LIMIT)
        with np.errstate(over="ignore"):  # e^t overflows beyond eta = 6.6: q is 0 there
            return t_success / np.expm1(t_success), t_success

    def binomial_derivatives(
        self,
        eta: FloatArray,
        k: FloatArray,
        m: FloatArray,
        slope: bool,
    ) -> tuple[FloatArray, FloatArray, FloatArray | None]:
        t = self._t(eta)
        q, t_success = self._q(eta)
        failures = (m - k) * t
        s = self._shift(q, t_success)
        residual = k * q - failures
        weights = failures - k * q * s
        if not slope:
            return residual, weights, None
        return residual, weights, failures - k * q * (s * s - q * s - t_success)

    def binomial_fisher(self, eta: FloatArray) -> FloatArray:
        # mu'^2 / (mu (1 - mu)) = t^2 e^-t / (1 - e^-t) = t q.
        q, t_success = self._q(eta)
        return np.asarray(self._t(eta) * q)


LOG_ETA_MARGIN = 1e-100
"""The log link's derivatives are evaluated at min(eta, -1e-100): at eta = 0 (mu = 1) they are
infinite; the margin keeps them finite (p = mu / (1 - mu) <= 1e100) where the likelihood is 0
or the row has no failures."""


class LogLink(LinkFunctions):
    """mu = e^eta, defined for eta <= 0. With p = mu / (1 - mu) = 1 / expm1(-eta):
    l = k eta + (m - k) log(-expm1(eta)),  l' = k - (m - k) p,  w = (m - k) p (1 + p),
    dw/deta = (m - k) p (1 + p) (1 + 2 p); l = -inf where eta > 0 (mu > 1 is no probability)."""

    name = "log"
    eta_upper = 0.0
    interior = (-184.0, -1e-80)

    def link_values(self, mu: FloatArray) -> FloatArray:
        return np.asarray(np.log(mu), dtype=np.float64)

    def mean_derivatives(
        self, eta: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        inside = np.minimum(eta, 0.0)
        mu = np.exp(inside)
        return mu, -np.expm1(inside), mu, mu, mu

    def binomial_loglik(self, eta: FloatArray, k: FloatArray, m: FloatArray) -> FloatArray:
        inside = np.minimum(eta, 0.0)
        with np.errstate(divide="ignore"):
            value = k * eta + special_functions().xlogy(m - k, -np.expm1(inside))
        return np.asarray(np.where(eta > 0.0, -np.inf, value))

    def _p(self, eta: FloatArray) -> FloatArray:
        with np.errstate(over="ignore"):  # eta < -709: mu underflows, p = 0
            return np.asarray(1.0 / np.expm1(-np.minimum(eta, -LOG_ETA_MARGIN)))

    def inverse(self, eta: FloatArray) -> FloatArray:
        return np.asarray(np.exp(np.minimum(eta, 0.0)))

    def binomial_derivatives(
        self,
        eta: FloatArray,
        k: FloatArray,
        m: FloatArray,
        slope: bool,
    ) -> tuple[FloatArray, FloatArray, FloatArray | None]:
        p = self._p(eta)
        failures = m - k
        weights = failures * p * (1.0 + p)
        residual = k - failures * p
        if not slope:
            return residual, weights, None
        return residual, weights, weights * (1.0 + 2.0 * p)

    def binomial_fisher(self, eta: FloatArray) -> FloatArray:
        # mu'^2 / (mu (1 - mu)) = mu / (1 - mu).
        return self._p(eta)


class LogitLink(LinkFunctions):
    """mu = expit(eta) (the beta-binomial's default link; the binomial logit is
    BinomialLogit)."""

    name = "logit"
    latent_variance = float(np.pi**2 / 3.0)

    def link_values(self, mu: FloatArray) -> FloatArray:
        return np.asarray(np.log(mu / (1.0 - mu)), dtype=np.float64)

    def mean_derivatives(
        self, eta: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        mu = logistic(eta)[0]
        complement = logistic(-eta)[0]
        d1 = mu * complement
        return mu, complement, d1, d1 * (complement - mu), d1 * (1.0 - 6.0 * d1)


_LINK_FUNCTIONS: dict[str, LinkFunctions] = {
    "logit": LogitLink(),
    "probit": ProbitLink(),
    "cloglog": CloglogLink(),
    "cauchit": CauchitLink(),
    "log": LogLink(),
}
"""The links by name (one line per link)."""


# --- the binomial family with any link -------------------------------------------------------


CHUNK_ROWS = 16384
"""Rows per piece when a link's row functions run over a long 1-d eta: each function is many
passes over its arrays, which then stay in the processor's cache (several times faster on a
million rows than whole-array passes through memory)."""


def _pieces(n: int) -> list[slice]:
    return [slice(start, min(start + CHUNK_ROWS, n)) for start in range(0, n, CHUNK_ROWS)]


class _LastState:
    """l' and w at the last eta of mean_and_loglik, kept while that eta array lives
    (a weak reference and a finalizer: nothing outlives the mode search that made it), so that
    weights_and_residual at the same eta returns them. Keyed by the identity of the eta
    array, which PIRLS never changes in place; a swap of one tuple, safe across threads."""

    def __init__(self) -> None:
        self._entry: tuple[Any, tuple[FloatArray, ...], object] | None = None

    def store(self, eta: FloatArray, state: tuple[FloatArray, ...]) -> None:
        token = object()
        self._entry = (weakref.ref(eta), state, token)
        weakref.finalize(eta, self._forget, token)

    def _forget(self, token: object) -> None:
        entry = self._entry
        if entry is not None and entry[2] is token:
            self._entry = None

    def recall(self, eta: FloatArray) -> tuple[FloatArray, ...] | None:
        entry = self._entry
        if entry is not None and entry[0]() is eta:
            return entry[1]
        return None


_LAST_STATE = _LastState()


class _BernoulliSigns:
    """sign = 2 k - 1 when every row has one trial and k is 0 or 1 (else None), kept for the
    last (successes, trials) arrays seen while they live (the model's own arrays, the same at
    every call of a fit)."""

    def __init__(self) -> None:
        self._entry: tuple[Any, Any, FloatArray | None] | None = None

    def __call__(self, successes: FloatArray, trials: FloatArray) -> FloatArray | None:
        entry = self._entry
        if entry is not None and entry[0]() is successes and entry[1]() is trials:
            return entry[2]
        sign = None
        if successes.ndim == 1 and bool((trials == 1.0).all()):
            if bool(((successes == 0.0) | (successes == 1.0)).all()):
                sign = 2.0 * successes - 1.0
        self._entry = (weakref.ref(successes), weakref.ref(trials), sign)
        return sign


_BERNOULLI_SIGNS = _BernoulliSigns()


@dataclass(frozen=True)
class Binomial(Family):
    """The binomial family with a non-canonical link ("probit", "cloglog", "cauchit", "log"):
    l = k log mu + (m - k) log(1 - mu), mu = F(eta), from the link's row functions (in pieces
    of CHUNK_ROWS rows over a long 1-d eta; l' and w with the log-likelihood, kept for the
    weights at the same eta)."""

    link: str = "probit"
    name: str = "binomial"
    latent_variance: float = field(init=False)

    def __post_init__(self) -> None:
        if self.link not in _LINK_FUNCTIONS or self.link == "logit":
            raise ValueError(
                f"Binomial takes the links {', '.join(LINKS[1:])}; the logit is BINOMIAL_LOGIT"
            )
        object.__setattr__(self, "latent_variance", _LINK_FUNCTIONS[self.link].latent_variance)

    @property
    def functions(self) -> LinkFunctions:
        return _LINK_FUNCTIONS[self.link]

    def mean_and_loglik(
        self,
        eta: FloatArray,
        successes: FloatArray,
        trials: FloatArray,
        scratch: tuple[FloatArray, FloatArray] | None = None,
    ) -> tuple[FloatArray, float]:
        """mu and sum_i l_i at 1-d eta; l' and w at eta are computed with them (PIRLS asks
        for them at nearly every such point) and kept for weights_and_residual."""
        functions = self.functions
        sign = _BERNOULLI_SIGNS(successes, trials) if functions.bernoulli_kernels else None
        n = eta.shape[0]
        mu, residual, weights = np.empty(n), np.empty(n), np.empty(n)
        total = 0.0
        for piece in _pieces(n):
            if sign is None:
                parts = functions.evaluate(eta[piece], successes[piece], trials[piece])
            else:
                parts = functions.evaluate_bernoulli(eta[piece], sign[piece])
            total += parts[0]
            mu[piece], residual[piece], weights[piece] = parts[1:]
        _LAST_STATE.store(eta, (residual, weights))
        return mu, total

    def loglik_rows(self, eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
        return self.functions.binomial_loglik(eta, successes, trials)

    def _derivatives(
        self, eta: FloatArray, successes: FloatArray, trials: FloatArray, slope: bool
    ) -> tuple[FloatArray, FloatArray, FloatArray | None]:
        functions = self.functions
        if not slope:
            kept = _LAST_STATE.recall(eta)
            if kept is not None:
                return kept[0], kept[1], None
        if eta.ndim != 1 or eta.shape[0] <= CHUNK_ROWS:
            return functions.binomial_derivatives(eta, successes, trials, slope)
        n = eta.shape[0]
        residual, weights = np.empty(n), np.empty(n)
        gradient = np.empty(n) if slope else None
        for piece in _pieces(n):
            r, w, g = functions.binomial_derivatives(
                eta[piece], successes[piece], trials[piece], slope
            )
            residual[piece], weights[piece] = r, w
            if gradient is not None:
                gradient[piece] = g
        return residual, weights, gradient

    def weights_and_residual(
        self,
        eta: FloatArray,
        mu: FloatArray,
        successes: FloatArray,
        trials: FloatArray,
        unit_trials: bool = False,
    ) -> tuple[FloatArray, FloatArray]:
        residual, weights, _ = self._derivatives(eta, successes, trials, False)
        return weights, residual

    def fisher_weights_and_residual(
        self, eta: FloatArray, mu: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        residual = self.residual(eta, successes, trials)
        return trials * self.functions.binomial_fisher(eta), residual

    def residual(self, eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
        if np.ndim(eta) == 1:
            return self._derivatives(eta, successes, trials, False)[0]
        return self.functions.binomial_derivatives(eta, successes, trials, False)[0]

    def weight_slope(
        self,
        eta: FloatArray,
        mu: FloatArray,
        weights: FloatArray,
        successes: FloatArray | None = None,
        trials: FloatArray | None = None,
    ) -> FloatArray:
        if successes is None or trials is None:
            raise ValueError(f"the {self.link} link's weight slope needs successes and trials")
        functions = self.functions
        sign = None
        if functions.bernoulli_kernels and np.ndim(eta) == 1:
            sign = _BERNOULLI_SIGNS(successes, trials)
        if sign is not None:
            kept = _LAST_STATE.recall(eta)
            out = np.empty(eta.shape[0])
            for piece in _pieces(eta.shape[0]):
                part = None if kept is None else (kept[0][piece], kept[1][piece])
                out[piece] = functions.slope_bernoulli(eta[piece], sign[piece], part)
            return out
        if np.ndim(eta) == 1:
            slope = self._derivatives(eta, successes, trials, True)[2]
        else:
            slope = self.functions.binomial_derivatives(eta, successes, trials, True)[2]
        assert slope is not None
        return slope

    def simulate(self, eta: FloatArray, trials: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Successes ~ Binomial(trials, F(eta)), as floats; trials must be whole numbers."""
        mu = np.clip(self.functions.inverse(np.asarray(eta, dtype=np.float64)), 0.0, 1.0)
        return rng.binomial(whole_trials(trials), mu).astype(np.float64)


# --- the beta-binomial family ----------------------------------------------------------------

BETABINOMIAL_START_PHI_LIMITS = (1e-2, 1e4)
"""The moment estimate of phi that starts the optimizer is held to this range."""

LOG_PHI_LIMIT = 50.0
"""The beta-binomial's log phi at its limit (phi 5e21): the binomial to rounding ((m - 1) /
(phi + 1) below 2e-19 per 1,000 trials), with the powers of phi its derivatives and series take
(up to phi^8) still finite. Without overdispersion the maximum lies at phi -> inf; the search's
end is tried here, and an optimum here is reported as phi = inf."""


@dataclass(frozen=True)
class BetaBinomial(Family):
    """glmmTMB's beta-binomial: k | p ~ Binomial(m, p), p ~ Beta(a, b), a = mu phi,
    b = (1 - mu) phi, mu = F(eta); E k = m mu, Var k = m mu (1 - mu) (1 + (m - 1) / (phi + 1)).

        l = lgamma(k + a) + lgamma(m - k + b) - lgamma(m + phi) - lgamma(a) - lgamma(b)
            + lgamma(phi)                   (the binomial coefficient excluded)

    Derivatives in mu (psi, psi1, psi2: digamma, trigamma, tetragamma):
        L1 = phi D1, D1 = psi(k + a) - psi(a) - psi(m - k + b) + psi(b),
        L2 = phi^2 D2, D2 = psi1(k + a) - psi1(a) + psi1(m - k + b) - psi1(b),
        L3 = phi^3 D3, D3 = psi2(k + a) - psi2(a) - psi2(m - k + b) + psi2(b),
    and in eta by the chain rule with mu' = d1, d2, d3: l' = L1 d1, w = -(L2 d1^2 + L1 d2),
    dw/deta = -(L3 d1^3 + 3 L2 d1 d2 + L1 d3). phi is estimated on the log scale (the
    parameter log phi, glmmTMB's dispersion parameter); phi = NaN marks the family of a model
    before its fit. Past the link's bound (the log link's mu > 1) l = -inf, as the binomial's.
    """

    link: str = "logit"
    phi: float = float("nan")
    name: str = "betabinomial"
    latent_variance: float = float("nan")

    n_parameters: ClassVar[int] = 1
    parameter_names: ClassVar[tuple[str, ...]] = ("log_phi",)

    def __post_init__(self) -> None:
        if self.link not in _LINK_FUNCTIONS:
            raise ValueError(f"link must be one of {', '.join(LINKS)}, got {self.link!r}")

    @property
    def log_concave(self) -> bool:
        return False  # the beta-binomial likelihood need not be concave in eta

    @property
    def functions(self) -> LinkFunctions:
        return _LINK_FUNCTIONS[self.link]

    @property
    def start_family(self) -> Family:
        return BINOMIAL_LOGIT if self.link == "logit" else Binomial(self.link)

    def variance_factor(self, trials: FloatArray) -> FloatArray | float:
        return np.asarray(1.0 + (trials - 1.0) / (self.phi + 1.0))

    def check_data(self, successes: FloatArray, trials: FloatArray) -> None:
        if not (trials > 1.0).any():
            raise ValueError(
                "family='betabinomial' needs rows with more than one trial (counts as "
                "cbind(successes, failures), or proportions with weights= the trials): a "
                "0/1 (Bernoulli) row carries no information on the dispersion phi; for 0/1 "
                "data use family='binomial'"
            )

    def parameters(self) -> FloatArray:
        return np.array([np.log(self.phi)])

    def with_parameters(self, values: FloatArray) -> BetaBinomial:
        return dataclasses.replace(self, phi=float(np.exp(values[0])))

    def parameter_limits(self) -> FloatArray:
        return np.array([LOG_PHI_LIMIT])

    def parameter_near_limit(self, values: FloatArray, tol: float) -> NDArray[np.bool_]:
        return np.asarray(np.asarray(values, dtype=np.float64) > np.log(1.0 / tol))

    def parameter_restarts(self) -> FloatArray:
        return np.array([np.log(BETABINOMIAL_START_PHI_LIMITS[1])])

    def start_moments(
        self, eta: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> FloatArray:
        """The sums of (k - m mu)^2 - m mu (1 - mu) and m mu (1 - mu) (m - 1) about the GLM's
        means mu, whose ratio estimates rho (parameters_from_moments)."""
        mu = np.clip(self.functions.inverse(eta), 1e-8, 1.0 - 1e-8)
        variance = trials * mu * (1.0 - mu)
        excess = float(((successes - trials * mu) ** 2 - variance).sum())
        spread = float((variance * (trials - 1.0)).sum())
        return np.array([excess, spread])

    def parameters_from_moments(self, moments: FloatArray) -> FloatArray:
        """log phi from the moments of the rows about the GLM's means:
        E (k - m mu)^2 = m mu (1 - mu) (1 + (m - 1) rho), rho = 1 / (phi + 1)."""
        excess, spread = float(moments[0]), float(moments[1])
        low, high = BETABINOMIAL_START_PHI_LIMITS
        rho = excess / spread if spread > 0 else 0.0
        phi = 1.0 / rho - 1.0 if rho > 0 else high
        return np.array([np.log(float(np.clip(phi, low, high)))])

    def _rows(self, eta: FloatArray, k: FloatArray, m: FloatArray, order: int) -> dict[str, Any]:
        """The pieces of the derivatives up to `order` (1: D1; 2: D2 and dD1/dphi; 3: D3 and
        dD2/dphi) at eta, with mu, 1 - mu, d1, d2, d3, a and b."""
        functions = self.functions
        mu, complement, d1, d2, d3 = functions.mean_derivatives(np.clip(eta, *functions.interior))
        phi = self.phi
        a, b = mu * phi, complement * phi
        out: dict[str, Any] = {"mu": mu, "complement": complement, "a": a, "b": b}
        out.update(d1=d1, d2=d2, d3=d3)
        # psi(k + a) - psi(a) and the like without cancellation at a large phi.
        rises_a = polygamma_rises(a, k, order)
        rises_b = polygamma_rises(b, m - k, order)
        out["digamma_a"], out["digamma_b"] = rises_a[0], rises_b[0]
        out["D1"] = rises_a[0] - rises_b[0]
        if order >= 2:
            out["D2"] = rises_a[1] + rises_b[1]
            out["dD1"] = mu * rises_a[1] - complement * rises_b[1]
        if order >= 3:
            out["D3"] = rises_a[2] - rises_b[2]
            out["dD2"] = mu * rises_a[2] + complement * rises_b[2]
        return out

    def _loglik(self, eta: FloatArray, k: FloatArray, m: FloatArray) -> tuple[FloatArray, Any]:
        mu, complement, *_ = self.functions.mean_derivatives(eta)
        phi = self.phi
        a = np.maximum(mu * phi, 1e-300)
        b = np.maximum(complement * phi, 1e-300)
        # The three lgamma differences without cancellation at a large phi (lgamma_rise): as
        # phi grows the beta-binomial tends to the binomial, not to rounding noise.
        value = lgamma_rise(a, k) + lgamma_rise(b, m - k) - lgamma_rise(phi, m)
        if np.isfinite(self.eta_upper):
            # Past the link's bound (the log link's mu > 1) there is no probability: the
            # likelihood is 0, as the binomial's, not the value at the bound carried on flat.
            value = np.where(eta > self.eta_upper, -np.inf, value)
        return np.asarray(value), mu

    def mean_and_loglik(
        self,
        eta: FloatArray,
        successes: FloatArray,
        trials: FloatArray,
        scratch: tuple[FloatArray, FloatArray] | None = None,
    ) -> tuple[FloatArray, float]:
        value, mu = self._loglik(eta, successes, trials)
        return mu, float(value.sum())

    def loglik_rows(self, eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
        return self._loglik(eta, successes, trials)[0]

    def weights_and_residual(
        self,
        eta: FloatArray,
        mu: FloatArray,
        successes: FloatArray,
        trials: FloatArray,
        unit_trials: bool = False,
    ) -> tuple[FloatArray, FloatArray]:
        r = self._rows(eta, successes, trials, 2)
        l1, l2 = self.phi * r["D1"], self.phi**2 * r["D2"]
        return -(l2 * r["d1"] ** 2 + l1 * r["d2"]), l1 * r["d1"]

    def fisher_weights_and_residual(
        self, eta: FloatArray, mu: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """The binomial's Fisher weights over the variance factor (the mean's information)."""
        weights, _ = self.start_family.fisher_weights_and_residual(eta, mu, successes, trials)
        return weights / self.variance_factor(trials), self.residual(eta, successes, trials)

    def residual(self, eta: FloatArray, successes: FloatArray, trials: FloatArray) -> FloatArray:
        r = self._rows(eta, successes, trials, 1)
        return np.asarray(self.phi * r["D1"] * r["d1"])

    def weight_slope(
        self,
        eta: FloatArray,
        mu: FloatArray,
        weights: FloatArray,
        successes: FloatArray | None = None,
        trials: FloatArray | None = None,
    ) -> FloatArray:
        if successes is None or trials is None:
            raise ValueError("the beta-binomial weight slope needs successes and trials")
        r = self._rows(eta, successes, trials, 3)
        phi = self.phi
        l1, l2, l3 = phi * r["D1"], phi**2 * r["D2"], phi**3 * r["D3"]
        d1, d2, d3 = r["d1"], r["d2"], r["d3"]
        return np.asarray(-(l3 * d1**3 + 3.0 * l2 * d1 * d2 + l1 * d3))

    def parameter_loglik_rows(
        self, eta: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> FloatArray:
        """dl/d log phi = phi (mu (psi(k + a) - psi(a)) + (1 - mu) (psi(m - k + b) - psi(b))
        - psi(m + phi) + psi(phi)) (broadcasting)."""
        r = self._rows(eta, successes, trials, 1)
        phi = self.phi
        at_mu = r["mu"] * r["digamma_a"] + r["complement"] * r["digamma_b"]
        return np.asarray(phi * (at_mu - polygamma_rises(phi, trials, 1)[0]))

    def parameter_rows(
        self, eta: FloatArray, successes: FloatArray, trials: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """dl/d log phi, dl'/d log phi and dw/d log phi row by row: with the phi-derivatives
        at fixed mu dD1/dphi = mu (psi1(k + a) - psi1(a)) - (1 - mu) (psi1(m - k + b) -
        psi1(b)) and dD2/dphi = mu (psi2(k + a) - psi2(a)) + (1 - mu) (psi2(m - k + b) -
        psi2(b)): dL1/dphi = D1 + phi dD1/dphi, dL2/dphi = 2 phi D2 + phi^2 dD2/dphi, each
        times phi for the log scale."""
        r = self._rows(eta, successes, trials, 3)
        phi = self.phi
        dl1 = r["D1"] + phi * r["dD1"]
        dl2 = 2.0 * phi * r["D2"] + phi * phi * r["dD2"]
        d1, d2 = r["d1"], r["d2"]
        at_mu = r["mu"] * r["digamma_a"] + r["complement"] * r["digamma_b"]
        loglik_phi = phi * (at_mu - polygamma_rises(phi, trials, 1)[0])
        return np.asarray(loglik_phi), phi * dl1 * d1, -phi * (dl2 * d1 * d1 + dl1 * d2)

    def simulate(self, eta: FloatArray, trials: FloatArray, rng: np.random.Generator) -> FloatArray:
        """p ~ Beta(mu phi, (1 - mu) phi), then successes ~ Binomial(trials, p), as floats."""
        if not np.isfinite(self.phi):
            raise ValueError("simulate needs the beta-binomial family at a value of phi")
        mu, complement, *_ = self.functions.mean_derivatives(np.asarray(eta, dtype=np.float64))
        a = np.maximum(mu * self.phi, 1e-300)
        b = np.maximum(complement * self.phi, 1e-300)
        p = rng.beta(a, b)
        return rng.binomial(whole_trials(trials), p).astype(np.float64)


def _trigamma(x: FloatArray) -> FloatArray:
    """psi1(x) = zeta(2, x)."""
    return np.asarray(special_functions().zeta(2.0, x))


RISE_ASYMPTOTIC = 1e3
"""lgamma_rise and polygamma_rises use the asymptotic (Stirling) series of the differences
where x is at least this: there the dropped terms are below 1e-13 of the kept ones, while the
direct difference of two function values of size log x (lgamma: x log x) loses their size
times the rounding, which at x = 1e20 (the beta-binomial's a = mu phi for a large phi) is more
than the difference itself."""


def lgamma_rise(x: FloatArray | float, n: FloatArray | float) -> FloatArray:
    """lgamma(x + n) - lgamma(x) (broadcast, x > 0, n >= 0): the difference itself where x <
    RISE_ASYMPTOTIC, beyond it (x - 1/2) log1p(n / x) + n log(x + n) - n - n / (12 x (x + n)),
    the Stirling series without cancellation."""
    x, n = same_shape(x, n)

    def direct(xs: FloatArray, ns: FloatArray) -> list[FloatArray]:
        gammaln = special_functions().gammaln
        return [np.asarray(gammaln(xs + ns) - gammaln(xs))]

    def series(xs: FloatArray, ns: FloatArray) -> list[FloatArray]:
        ys = xs + ns
        return [(xs - 0.5) * np.log1p(ns / xs) + ns * np.log(ys) - ns - ns / (12.0 * xs * ys)]

    return by_size(x, n, direct, series)[0]


def polygamma_rises(x: FloatArray | float, n: FloatArray | float, order: int) -> list[FloatArray]:
    """[digamma(x + n) - digamma(x), and for order >= 2 the trigamma's, for order >= 3 the
    tetragamma's] (broadcast, x > 0, n >= 0), as lgamma_rise: the differences themselves
    below RISE_ASYMPTOTIC, beyond it with y = x + n
    digamma: log1p(n / x) + n / (2 x y) + n (x + y) / (12 x^2 y^2);
    trigamma: -n / (x y) - n (x + y) / (2 x^2 y^2) - n (x^2 + x y + y^2) / (6 x^3 y^3);
    tetragamma: n (x + y) / (x^2 y^2) + n (x^2 + x y + y^2) / (x^3 y^3)
        + n (x + y) (x^2 + y^2) / (2 x^4 y^4)."""
    x, n = same_shape(x, n)

    def direct(xs: FloatArray, ns: FloatArray) -> list[FloatArray]:
        digamma = special_functions().digamma
        ys = xs + ns
        out = [np.asarray(digamma(ys) - digamma(xs))]
        if order >= 2:
            out.append(_trigamma(ys) - _trigamma(xs))
        if order >= 3:
            out.append(_tetragamma(ys) - _tetragamma(xs))
        return out

    def series(xs: FloatArray, ns: FloatArray) -> list[FloatArray]:
        ys = xs + ns
        xy = xs * ys
        out = [np.log1p(ns / xs) + ns / (2.0 * xy) + ns * (xs + ys) / (12.0 * xy * xy)]
        cubic = xs * xs + xy + ys * ys
        if order >= 2:
            out.append(-ns / xy - ns * (xs + ys) / (2.0 * xy * xy) - ns * cubic / (6.0 * xy**3))
        if order >= 3:
            quartic = (xs + ys) * (xs * xs + ys * ys)
            out.append(
                ns * (xs + ys) / (xy * xy) + ns * cubic / xy**3 + ns * quartic / (2.0 * xy**4)
            )
        return out

    return by_size(x, n, direct, series)


def same_shape(x: FloatArray | float, n: FloatArray | float) -> tuple[FloatArray, FloatArray]:
    """x and n as float arrays of one shape (broadcast only where their shapes differ)."""
    x, n = np.asarray(x, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if x.shape != n.shape:
        x, n = np.broadcast_arrays(x, n)
    return x, n


def by_size(
    x: FloatArray,
    n: FloatArray,
    direct: Callable[[FloatArray, FloatArray], list[FloatArray]],
    series: Callable[[FloatArray, FloatArray], list[FloatArray]],
) -> list[FloatArray]:
    """direct(x, n) where x < RISE_ASYMPTOTIC and series(x, n) beyond, entry by entry (each
    on the whole arrays when all entries fall on one side)."""
    if x.size == 0 or float(x.max()) < RISE_ASYMPTOTIC:
        return direct(x, n)
    if float(x.min()) >= RISE_ASYMPTOTIC:
        return series(x, n)
    large = x >= RISE_ASYMPTOTIC
    small = ~large
    out = []
    for low, high in zip(direct(x[small], n[small]), series(x[large], n[large]), strict=True):
        merged = np.empty_like(x)
        merged[small], merged[large] = low, high
        out.append(merged)
    return out


def _tetragamma(x: FloatArray) -> FloatArray:
    """psi2(x) = -2 zeta(3, x)."""
    return np.asarray(-2.0 * special_functions().zeta(3.0, x))


# --- families by name ------------------------------------------------------------------------

_R_CALL = re.compile(
    r"""^\s*(?P<family>[A-Za-z_.]+)\s*(?:\(\s*(?:(?:link\s*=\s*)?["']?(?P<link>[A-Za-z_]*)["']?)?\s*\))?\s*$"""
)


def parse_family(text: str) -> tuple[str, str | None]:
    """(family, link or None) from "binomial", "betabinomial" or R's call
    "binomial(link = 'probit')" / 'binomial("probit")' / "binomial(link = probit)"."""
    found = _R_CALL.match(text)
    if found is None:
        raise ValueError(
            f"family must be one of {', '.join(map(repr, FAMILIES))}, optionally as R writes "
            f"it (\"binomial(link = 'probit')\"), or a Family object; got {text!r}"
        )
    name = found.group("family").lower().replace("_", "").replace(".", "")
    if name not in FAMILIES:
        hint = (
            " (glmer refuses quasi families too: for overdispersion use "
            "family='betabinomial', or an observation-level random effect, (1 | obs))"
            if name.startswith("quasi")
            else ""
        )
        raise ValueError(
            f"family must be one of {', '.join(map(repr, FAMILIES))}, got {text!r}{hint}"
        )
    return name, found.group("link") or None


def make_family(family: str | Family | None = None, link: str | None = None) -> Family:
    """The Family object for fit()'s `family` and `link` arguments.

    family: "binomial" (default), "betabinomial", R's spelling "binomial(link = 'cloglog')",
    or a Family object; link: "logit" (default), "probit", "cloglog", "cauchit" or "log", in any
    letter case (as the family's name). A link given both ways must agree. ValueError names the
    argument at fault."""
    if link is not None and (not isinstance(link, str) or link.lower() not in LINKS):
        raise ValueError(f"link must be one of {', '.join(map(repr, LINKS))}, got {link!r}")
    link = None if link is None else link.lower()
    if isinstance(family, Family):
        if link is not None and link != family.link:
            raise ValueError(
                f"link={link!r} differs from the link of the family object ({family.link!r})"
            )
        return family
    if family is None:
        name, inner = "binomial", None
    elif isinstance(family, str):
        name, inner = parse_family(family)
    else:
        raise ValueError(
            f"family must be a string such as 'binomial' or a Family object, got {family!r}"
        )
    inner = None if inner is None else inner.lower()
    if inner is not None and inner not in LINKS:
        raise ValueError(
            f"family {family!r}: link must be one of {', '.join(map(repr, LINKS))}, got {inner!r}"
        )
    if inner is not None and link is not None and inner != link:
        raise ValueError(f"family {family!r} names the link {inner!r}, but link={link!r}")
    chosen = link or inner or "logit"
    if name == "betabinomial":
        return BetaBinomial(chosen)
    return BINOMIAL_LOGIT if chosen == "logit" else Binomial(chosen)
