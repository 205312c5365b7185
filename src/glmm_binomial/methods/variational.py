"""Mean-field variational Bayes (method "vb_meanfield") for the binomial GLMM with independent
variance components. Method "vb" is the structured family of structured_vb.py.

The model and the variational family are those of statsmodels' BinomialBayesMixedGLM.fit_vb:

    beta_j ~ N(0, prior_fe_sd^2),   tau_c = log SD of component c ~ N(0, prior_log_sd_sd^2),
    b_cj | tau_c ~ N(0, exp(2 tau_c)),   successes_i ~ Binomial(trials_i, expit(eta_i)),
    eta_i = x_i' beta + sum_c z_c(i) b_c[g_c(i)] + offset_i,

one variance component per random-effect block (blocks must have a single column, k = 1; the
spreadsheet's independent components and lme4's `||` give such blocks). The posterior is
approximated by independent Gaussians for every beta_j, every tau_c and every b_cj, and the
evidence lower bound (ELBO) is maximized over their means and log standard deviations.

The ELBO is statsmodels' vb_elbo term for term (for Bernoulli rows; with trials m_i the
expected log-likelihood is k_i E[eta_i] - m_i E[log(1 + e^eta_i)]), constants omitted as there:

    sum_i (k_i E[eta_i] - m_i E[log(1 + exp(eta_i))])
    - 1/2 sum_cj (mean_cj^2 + sd_cj^2) E[exp(-2 tau_c)] - sum_c n_c E[tau_c]
    - 1/2 sum_c (E[tau_c^2]) / prior_log_sd_sd^2 - 1/2 sum_j E[beta_j^2] / prior_fe_sd^2
    + sum of the log posterior SDs (the entropy without its constant),

with E[exp(-2 tau_c)] = exp(2 s_c^2 - 2 m_c) for tau_c ~ N(m_c, s_c^2) and eta_i ~ N(tm_i, tv_i)
under q. E[log(1 + e^eta)] uses Gauss-Hermite quadrature with n_gauss_hermite nodes (statsmodels
uses 10-point Gauss-Legendre on [-5, 5], whose weights sum to 0.99913: an error near 1e-3 per
row at posterior SDs below 1, 1e-2 at SD 2; 32 Gauss-Hermite nodes stay below 1e-5 to SD 2.5).

What differs from statsmodels is how the optimum is found: a deterministic start (the fixed
effects' MAP under their prior, random effects at zero with SDs from the curvature), an exact
gradient computed by sums over rows per block (np.bincount), the q of each log SD profiled out
(a 1-d root given the rest), and L-BFGS-B in preconditioned coordinates: the fixed-effect means
are whitened by the Cholesky factor of their start curvature and random-effect means scaled by
theirs. The preconditioning is only a linear change of the optimizer's variables (no column of
X is centered or rescaled), so the family stays mean field on the original beta and the
optimum is that of statsmodels' ELBO (with statsmodels' rule plugged in, its converged optimum
to 1e-6).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.typing import NDArray

from glmm_binomial.diagnostics import ConvergenceWarning, FitWarning
from glmm_binomial.family import inverse_link, loglik_kernel
from glmm_binomial.methods.base import Method, Start, prior_settings, require_positive
from glmm_binomial.methods.estimates import FitOutput, require_finite
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.methods.posterior_checks import (
    fixed_effect_separation,
    group_separation,
    in_prior_tail,
    loose_log_sds,
    variance_boundary,
)
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.validation import check_independent_terms, check_unstructured
from glmm_binomial.numerics.optimize import OptSummary

FloatArray = NDArray[np.float64]

LOGLIK_LABEL = "Laplace approximation at the posterior means"


@dataclass(frozen=True)
class VariationalControl:
    """Tolerances and caps of the variational fit (all recorded in OptSummary.tolerances).

    n_gauss_hermite: nodes of the Gauss-Hermite rule for E[log(1 + e^eta)] per row.
    gtol: L-BFGS-B's projected-gradient tolerance, in preconditioned units (ELBO change per
        posterior SD of each mean, per unit of each log SD).
    ftol: L-BFGS-B's relative change in the ELBO below which it stops.
    max_iter: L-BFGS-B iteration cap.
    max_corrections: L-BFGS-B memory (number of stored curvature pairs).
    start_tol, start_max_iter: Newton iteration of the start (fixed effects' MAP).
    gtol_converged: the fit counts as converged when the largest preconditioned gradient entry
        at the end is below this (L-BFGS-B may stop on ftol slightly above gtol).
    log_sd_tol, log_sd_max_iter: safeguarded Newton iteration for the optimal q of each log SD
        given the random effects' q (profiled out of the optimization, see optimal_log_sd).
    separation_prior_sds: the fixed effects (random effects) are checked for separation (linear
        programs) when a posterior mean (of a log SD) is more than this many prior SDs from 0.
    """

    n_gauss_hermite: int = 32
    gtol: float = 1e-6
    ftol: float = 1e-15
    max_iter: int = 20000
    max_corrections: int = 30
    start_tol: float = 1e-10
    start_max_iter: int = 100
    log_sd_tol: float = 1e-14
    log_sd_max_iter: int = 200
    gtol_converged: float = 1e-4
    separation_prior_sds: float = 1.5


def gauss_hermite_rule(n_nodes: int) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights for E[f(Z)], Z ~ N(0, 1): probabilists' Gauss-Hermite, weights sum 1."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    # Symmetrize so that the rule is exactly even (the generator's rounding is not).
    nodes = 0.5 * (nodes - nodes[::-1])
    weights = 0.5 * (weights + weights[::-1])
    return nodes, weights / np.sum(weights)


@dataclass(frozen=True)
class VariationalParameters:
    """Means and SDs of the Gaussian factors, in the original parametrization.

    beta_mean, beta_sd: (p,) fixed effects. log_sd_mean, log_sd_sd: (n_blocks,) log SD of each
    variance component. b_mean, b_sd: per block, (n_levels,) random effects."""

    beta_mean: FloatArray
    beta_sd: FloatArray
    log_sd_mean: FloatArray
    log_sd_sd: FloatArray
    b_mean: tuple[FloatArray, ...]
    b_sd: tuple[FloatArray, ...]


@dataclass
class RowPart:
    """Sums over rows for the ELBO: value = sum_i (k_i E[eta_i] - m_i E[log(1 + e^eta_i)]);
    with the gradient, X' g_mean and (X * X)' g_var, and per block the sums over each level's
    rows of z g_mean and z^2 g_var (g_mean, g_var: derivatives of the row terms in the mean and
    variance of eta_i). Sums of disjoint sets of rows add up."""

    value: float
    x_mean: FloatArray | None = None
    x2_var: FloatArray | None = None
    level_mean: list[FloatArray] = field(default_factory=list)
    level_var: list[FloatArray] = field(default_factory=list)


class VariationalObjective:
    """The ELBO and its exact gradient over the packed vector of variational parameters.

    What needs the rows (row_part, glm_value, glm_curvature_score, start_curvatures,
    laplace_loglik) is separate from the rest, so that rows held elsewhere (a Dask fit's
    partitions) can supply those sums.

    Packed layout (statsmodels' order): means [beta (p), log SDs (n_blocks), b of each block
    (levels in order)], then the logs of the posterior SDs in the same order. So the packed
    vector is the x that statsmodels' fit_vb optimizes, given its exog_vc columns in this order.
    """

    separation_checked: ClassVar[bool] = True
    """Whether fixed_effect_separation and group_separation decide (their linear programs on
    the rows); a Dask fit's objective only says separation is possible, and the checks after
    them (variance_boundary) still run."""

    def __init__(
        self,
        data: ModelData,
        prior_fe_sd: float = 2.0,
        prior_log_sd_sd: float = 1.0,
        n_gauss_hermite: int = 32,
        rule: tuple[FloatArray, FloatArray] | None = None,
    ) -> None:
        check_supported(data)
        for name, value in (("prior_fe_sd", prior_fe_sd), ("prior_log_sd_sd", prior_log_sd_sd)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if int(n_gauss_hermite) < 1:
            raise ValueError(f"n_gauss_hermite must be at least 1, got {n_gauss_hermite!r}")
        self.data = data
        self.prior_fe_sd = float(prior_fe_sd)
        self.prior_log_sd_sd = float(prior_log_sd_sd)
        # rule: nodes and weights of E[f(Z)], Z ~ N(0, 1); another rule (statsmodels') for tests.
        self.nodes, self.weights = rule if rule is not None else gauss_hermite_rule(n_gauss_hermite)
        self.n_fixed = data.n_fixed
        self.n_blocks = len(data.blocks)
        self.codes = [b.codes for b in data.blocks]
        self.z = [np.ascontiguousarray(b.z[:, 0]) for b in data.blocks]
        self.z2 = [zc * zc for zc in self.z]
        self.x2 = data.x * data.x
        self.n_levels = np.array([b.n_levels for b in data.blocks], dtype=np.intp)
        self.level_offsets = np.concatenate([[0], np.cumsum(self.n_levels)]).astype(np.intp)
        self.n_random = int(self.level_offsets[-1])
        self.n_means = self.n_fixed + self.n_blocks + self.n_random
        self.evaluations = 0

    @property
    def size(self) -> int:
        return 2 * self.n_means

    @property
    def elbo_constant(self) -> float:
        """What statsmodels' ELBO omits: binomial coefficients, the Gaussian priors' and the
        entropy's normalizing constants. elbo + elbo_constant is a lower bound on the log
        marginal likelihood of the Bayesian model (priors included)."""
        return (
            self.data.log_binomial_constant
            + self.n_fixed * (0.5 - np.log(self.prior_fe_sd))
            + self.n_blocks * (0.5 - np.log(self.prior_log_sd_sd))
            + 0.5 * self.n_random
        )

    def pack(self, p: VariationalParameters) -> FloatArray:
        means = np.concatenate([p.beta_mean, p.log_sd_mean, *p.b_mean])
        sds = np.concatenate([p.beta_sd, p.log_sd_sd, *p.b_sd])
        return np.concatenate([means, np.log(sds)])

    def unpack(self, packed: FloatArray) -> VariationalParameters:
        n, p, c = self.n_means, self.n_fixed, self.n_blocks
        means, sds = packed[:n], np.exp(packed[n:])
        offsets = p + c + self.level_offsets
        return VariationalParameters(
            beta_mean=means[:p],
            beta_sd=sds[:p],
            log_sd_mean=means[p : p + c],
            log_sd_sd=sds[p : p + c],
            b_mean=tuple(means[offsets[t] : offsets[t + 1]] for t in range(c)),
            b_sd=tuple(sds[offsets[t] : offsets[t + 1]] for t in range(c)),
        )

    def with_optimal_log_sd(self, packed: FloatArray, control: VariationalControl) -> FloatArray:
        """packed with each log SD's q replaced by its optimum given the random effects' q."""
        if self.n_blocks == 0:
            return packed
        q = self.unpack(packed)
        second_moments = np.array(
            [np.sum(mb * mb + sb * sb) for mb, sb in zip(q.b_mean, q.b_sd, strict=True)]
        )
        n_levels = self.n_levels.astype(np.float64)
        m, s = optimal_log_sd(second_moments, n_levels, self.prior_log_sd_sd, control)
        out = packed.copy()
        p, c, n = self.n_fixed, self.n_blocks, self.n_means
        out[p : p + c] = m
        out[n + p : n + p + c] = np.log(s)
        return out

    def linear_predictor_moments(self, q: VariationalParameters) -> tuple[FloatArray, FloatArray]:
        """Mean and variance of eta_i under q."""
        data = self.data
        mean = data.x @ q.beta_mean + data.offset
        var = self.x2 @ (q.beta_sd * q.beta_sd)
        for t in range(self.n_blocks):
            codes = self.codes[t]
            mean = mean + self.z[t] * q.b_mean[t][codes]
            var = var + self.z2[t] * (q.b_sd[t] * q.b_sd[t])[codes]
        return mean, var

    def expected_log1pexp(
        self, mean: FloatArray, var: FloatArray, derivatives: bool
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The quadrature's E[log(1 + e^eta)], eta ~ N(mean, var), and its exact derivatives in
        mean and in var (row-wise).

        The derivatives are those of the quadrature sum itself, not quadrature sums of the true
        derivatives (E[expit], E[expit'] / 2): the two differ by the rule's error, and only the
        former makes the gradient exact for the optimizer. A loop over the (few) nodes,
        vectorized over rows."""
        sd = np.sqrt(var)
        value = np.zeros_like(mean)
        d_mean = np.zeros_like(mean)
        d_sd = np.zeros_like(mean)
        for node, weight in zip(self.nodes, self.weights, strict=True):
            eta = mean + sd * node
            # One exponential serves both log(1 + e^eta) = max(eta, 0) + log1p(e^-|eta|) and
            # expit(eta); e^-|eta| <= 1 never overflows.
            small = np.exp(-np.abs(eta))
            value += weight * (np.maximum(eta, 0.0) + np.log1p(small))
            if derivatives:
                mu = np.where(eta >= 0.0, 1.0, small) / (1.0 + small)
                d_mean += weight * mu
                d_sd += (weight * node) * mu
        if not derivatives:
            return value, d_mean, d_sd
        # d/d var = d/d sd / (2 sd). Where sd is so small that the division loses precision
        # (or var underflowed), the rule is exact for the Taylor terms that matter and the
        # derivative is expit'(mean) / 2.
        tiny = sd < 1e-6
        d_var = d_sd / (2.0 * np.where(tiny, 1.0, sd))
        if np.any(tiny):
            mu0 = inverse_link(mean[tiny])
            d_var[tiny] = 0.5 * mu0 * (1.0 - mu0)
        return value, d_mean, d_var

    def elbo(self, packed: FloatArray) -> float:
        """The ELBO (statsmodels' vb_elbo, binomial trials allowed) at a packed vector."""
        return self._evaluate(packed, gradient=False)[0]

    def elbo_and_gradient(self, packed: FloatArray) -> tuple[float, FloatArray]:
        """The ELBO and its exact gradient with respect to the packed vector."""
        value, grad = self._evaluate(packed, gradient=True)
        assert grad is not None
        return value, grad

    def row_part(self, q: VariationalParameters, gradient: bool) -> RowPart:
        """The rows' share of the ELBO and of its gradient (sums over rows)."""
        data = self.data
        k, m = data.successes, data.trials
        mean, var = self.linear_predictor_moments(q)
        e_log1pexp, d_mean, d_var = self.expected_log1pexp(mean, var, gradient)
        value = float(np.sum(k * mean - m * e_log1pexp))
        if not gradient:
            return RowPart(value)
        # d/d mean_i and d/d var_i of the expected row log-likelihood.
        g_mean = k - m * d_mean
        g_var = -m * d_var
        level_mean, level_var = [], []
        for t in range(self.n_blocks):
            n_t = int(self.n_levels[t])
            codes = self.codes[t]
            level_mean.append(_level_sums(codes, self.z[t] * g_mean, n_t))
            level_var.append(_level_sums(codes, self.z2[t] * g_var, n_t))
        return RowPart(value, data.x.T @ g_mean, self.x2.T @ g_var, level_mean, level_var)

    def glm_value(self, beta: FloatArray) -> float:
        """sum_i log p(k_i | x_i' beta + offset_i), binomial constants omitted."""
        data = self.data
        eta = data.x @ beta + data.offset
        return float(np.sum(loglik_kernel(eta, data.successes, data.trials)))

    def glm_curvature_score(self, beta: FloatArray) -> tuple[FloatArray, FloatArray]:
        """X' W X and X' (k - m mu) of the fixed-effects-only logistic regression at beta."""
        data = self.data
        x, k, m = data.x, data.successes, data.trials
        eta = x @ beta + data.offset
        mu = inverse_link(eta)
        return x.T @ ((m * mu * (1.0 - mu))[:, None] * x), x.T @ (k - m * mu)

    def start_curvatures(self, beta: FloatArray) -> list[FloatArray]:
        """Per block, sum over each level's rows of w_i z_i^2 (w the GLM weights at beta)."""
        data = self.data
        eta = data.x @ beta + data.offset
        w = data.trials * inverse_link(eta) * (1.0 - inverse_link(eta))
        return [
            _level_sums(self.codes[t], w * self.z2[t], block.n_levels)
            for t, block in enumerate(data.blocks)
        ]

    def laplace_loglik(self, theta: FloatArray, beta: FloatArray) -> float:
        """The Laplace marginal log-likelihood at (theta, beta), binomial constants included."""
        return -0.5 * LaplaceObjective(self.data).deviance(theta, beta)

    def fixed_effect_separation(self) -> FitWarning | None:
        """posterior_checks.fixed_effect_separation on the rows."""
        return fixed_effect_separation(self.data, self.prior_fe_sd)

    def group_separation(self, loose: list[int]) -> FitWarning | None:
        """posterior_checks.group_separation on the rows."""
        return group_separation(self.data, loose)

    def _evaluate(self, packed: FloatArray, gradient: bool) -> tuple[float, FloatArray | None]:
        self.evaluations += 1
        q = self.unpack(packed)
        rows = self.row_part(q, gradient)
        value = rows.value

        fe_precision = 1.0 / self.prior_fe_sd**2
        tau_precision = 1.0 / self.prior_log_sd_sd**2
        # E[exp(-2 tau_c)] under tau_c ~ N(m_c, s_c^2): the prior precision of b_c in expectation.
        b_precision = np.exp(2.0 * q.log_sd_sd**2 - 2.0 * q.log_sd_mean)
        second_moments = np.array(
            [np.sum(q.b_mean[t] ** 2 + q.b_sd[t] ** 2) for t in range(self.n_blocks)]
        )
        value -= 0.5 * float(np.sum(second_moments * b_precision))
        value -= float(np.sum(self.n_levels * q.log_sd_mean))
        value -= 0.5 * tau_precision * float(np.sum(q.log_sd_mean**2 + q.log_sd_sd**2))
        value -= 0.5 * fe_precision * float(np.sum(q.beta_mean**2 + q.beta_sd**2))
        value += float(np.sum(packed[self.n_means :]))  # sum of log SDs: the entropy
        if not gradient:
            return value, None

        assert rows.x_mean is not None and rows.x2_var is not None
        p, c = self.n_fixed, self.n_blocks
        grad_mean = np.empty(self.n_means)
        grad_log_sd = np.empty(self.n_means)
        beta_var = q.beta_sd**2
        grad_mean[:p] = rows.x_mean - fe_precision * q.beta_mean
        grad_log_sd[:p] = 2.0 * beta_var * rows.x2_var - fe_precision * beta_var + 1.0
        tau_var = q.log_sd_sd**2
        grad_mean[p : p + c] = (
            second_moments * b_precision - self.n_levels - tau_precision * (q.log_sd_mean)
        )
        grad_log_sd[p : p + c] = (
            -2.0 * tau_var * second_moments * b_precision - tau_precision * tau_var + 1.0
        )
        for t in range(c):
            lo = p + c + self.level_offsets[t]
            hi = p + c + self.level_offsets[t + 1]
            b_var = q.b_sd[t] ** 2
            grad_mean[lo:hi] = rows.level_mean[t] - b_precision[t] * q.b_mean[t]
            grad_log_sd[lo:hi] = 2.0 * b_var * rows.level_var[t] - b_precision[t] * b_var + 1.0
        return value, np.concatenate([grad_mean, grad_log_sd])


def _level_sums(codes: NDArray[np.intp], values: FloatArray, n_levels: int) -> FloatArray:
    """Sum of values over the rows of each level."""
    return np.asarray(np.bincount(codes, weights=values, minlength=n_levels), dtype=np.float64)


def optimal_log_sd(
    second_moments: FloatArray,
    n_levels: FloatArray,
    prior_log_sd_sd: float,
    control: VariationalControl,
) -> tuple[FloatArray, FloatArray]:
    """Mean m_c and SD s_c of q(tau_c) maximizing the ELBO given the random effects' q.

    With A_c = sum_j E[b_cj^2], n_c levels and P = 1 / prior_log_sd_sd^2 the ELBO's terms in
    (m, s) are -A e^(2 s^2 - 2 m) / 2 - n m - P (m^2 + s^2) / 2 + log s, jointly concave for
    s > 0. Its stationary point has s^2 = 1 / (2 (n + P m) + P) and m the unique root of the
    decreasing g(m) = log A + 2 s^2(m) - 2 m - log(n + P m) on m > -n / P, found by Newton's
    method kept inside a bracket (bisection when a step leaves it). Vectorized over components.
    """
    a = np.asarray(second_moments, dtype=np.float64)
    n = np.asarray(n_levels, dtype=np.float64)
    precision = 1.0 / prior_log_sd_sd**2

    def g_and_slope(m: FloatArray) -> tuple[FloatArray, FloatArray]:
        denominator = 2.0 * n + precision * (2.0 * m + 1.0)
        s2 = 1.0 / denominator
        g = np.log(a) + 2.0 * s2 - 2.0 * m - np.log(n + precision * m)
        slope = -4.0 * precision * s2 * s2 - 2.0 - precision / (n + precision * m)
        return g, slope

    lower = -n / precision
    # g > 0 at lower (its log term diverges); an upper end where g < 0: m >= log(A) / 2 + 1.
    upper = np.maximum(0.5 * np.log(a) + 1.0, lower + 1.0)
    g_upper, _ = g_and_slope(upper)
    while np.any(g_upper >= 0):  # g decreases to -inf, so this ends
        upper = np.where(g_upper >= 0, upper + 2.0 * (upper - lower), upper)
        g_upper, _ = g_and_slope(upper)
    m = np.clip(0.5 * np.log(a / n), lower + 0.5 * (upper - lower) * 1e-3, upper)
    for _ in range(control.log_sd_max_iter):
        g, slope = g_and_slope(m)
        lower = np.where(g > 0, m, lower)
        upper = np.where(g < 0, m, upper)
        step = -g / slope
        trial = m + step
        outside = ~((trial > lower) & (trial < upper))
        trial = np.where(outside, 0.5 * (lower + upper), trial)
        done = np.abs(trial - m) <= control.log_sd_tol * (1.0 + np.abs(m))
        m = trial
        if np.all(done):
            break
    s = 1.0 / np.sqrt(2.0 * (n + precision * m) + precision)
    return m, s


def statsmodels_rule() -> tuple[FloatArray, FloatArray]:
    """statsmodels' rule for E[f(Z)], Z ~ N(0, 1): 10-point Gauss-Legendre on [-5, 5] times the
    normal density. Its weights sum to 0.99913, not 1, so it is not the default; it is here so
    that tests can evaluate statsmodels' ELBO and reproduce its optimum exactly."""
    nodes, weights = np.polynomial.legendre.leggauss(10)
    half_width = 5.0
    z = half_width * nodes
    return z, half_width * weights * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)


def check_supported(data: ModelData) -> None:
    """Raise ValueError for blocks this family cannot fit (more than one column). fit() refuses
    them earlier, with advice in the user's formula syntax (validation.check_model)."""
    check_independent_terms(data)


def map_fixed_effects(
    rows: VariationalObjective, prior_fe_sd: float, control: VariationalControl
) -> tuple[FloatArray, FloatArray]:
    """Fixed-effects-only logistic regression at its posterior mode under N(0, prior_fe_sd^2).

    Newton's method; the prior keeps it finite under separation. Returns beta and the curvature
    X' W X + I / prior_fe_sd^2 at it; rows.glm_value and rows.glm_curvature_score supply the
    sums over the rows."""
    precision = np.eye(rows.n_fixed) / prior_fe_sd**2
    beta = np.zeros(rows.n_fixed)

    def objective(b: FloatArray) -> float:
        return rows.glm_value(b) - float(0.5 * b @ precision @ b)

    current = objective(beta)
    curvature = precision
    for _ in range(control.start_max_iter):
        information, score = rows.glm_curvature_score(beta)
        curvature = information + precision
        # Solved with the curvature scaled to unit diagonal: covariates in very large or small
        # units make it ill-conditioned (and scipy warn) although the scaled system is not.
        root = np.sqrt(np.diag(curvature))
        step = (
            scipy.linalg.solve(
                curvature / np.outer(root, root),
                (score - precision @ beta) / root,
                assume_a="pos",
            )
            / root
        )
        # Halve until the log posterior does not decrease (it is concave, so this ends).
        for _ in range(50):
            trial = objective(beta + step)
            if trial >= current:
                break
            step = 0.5 * step
        beta, current = beta + step, trial
        if float(np.abs(step).max(initial=0.0)) < control.start_tol:
            break
    return beta, curvature


def start_parameters(
    objective: VariationalObjective, control: VariationalControl
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Deterministic start, the ELBO's curvature in each mean (diagonal) and the fixed
    effects' start curvature matrix.

    Fixed effects at their MAP (no random effects) with SDs from the inverse curvature; log SD
    means at 0 (SD 1) with SD 1 / sqrt(2 n_levels); random effects at 0 with SDs from their
    curvature (data weight at the start plus prior precision 1)."""
    data = objective.data
    beta, curvature = map_fixed_effects(objective, objective.prior_fe_sd, control)
    beta_sd = np.sqrt(np.diag(np.linalg.inv(curvature)))
    b_mean, b_sd, b_curv = [], [], []
    for block, level_sums in zip(data.blocks, objective.start_curvatures(beta), strict=True):
        n_t = block.n_levels
        curv = level_sums + 1.0
        b_mean.append(np.zeros(n_t))
        b_sd.append(1.0 / np.sqrt(curv))
        b_curv.append(curv)
    n_levels = objective.n_levels.astype(np.float64)
    q = VariationalParameters(
        beta_mean=beta,
        beta_sd=beta_sd,
        log_sd_mean=np.zeros(objective.n_blocks),
        log_sd_sd=1.0 / np.sqrt(2.0 * n_levels + 1.0 / objective.prior_log_sd_sd**2),
        b_mean=tuple(b_mean),
        b_sd=tuple(b_sd),
    )
    # Curvature of the ELBO in each mean (log SDs have curvature about 2 at the optimum).
    mean_curvature = np.concatenate(
        [np.diag(curvature), 2.0 * n_levels + 1.0, *b_curv] if b_curv else [np.diag(curvature)]
    )
    return objective.pack(q), mean_curvature, curvature


@dataclass(frozen=True)
class VariationalFit:
    """A variational fit with what the tests and benchmarks look at beyond FitOutput."""

    output: FitOutput
    packed: FloatArray  # the optimum, packed as VariationalObjective.pack
    elbo: float
    objective: VariationalObjective


def fit_vb(
    data: ModelData,
    prior_fe_sd: float = 2.0,
    prior_log_sd_sd: float = 1.0,
    control: VariationalControl | None = None,
    objective: VariationalObjective | None = None,
) -> FitOutput:
    """Mean-field variational Bayes fit (statsmodels' fit_vb model and ELBO, optimized well);
    objective: as fit_vb_detailed's.

    Returns posterior means of beta (vcov_beta: the diagonal of posterior variances), theta =
    exp(posterior mean of each log SD) (one per k = 1 block), theta_cov = diagonal of the
    posterior variances of the log SDs, posterior means and variances of the random effects
    (n_levels x 1 and n_levels x 1 x 1 per block), and loglik = the Laplace marginal
    log-likelihood at (theta, beta), binomial constants included."""
    return fit_vb_detailed(data, prior_fe_sd, prior_log_sd_sd, control, objective=objective).output


def fit_vb_detailed(
    data: ModelData,
    prior_fe_sd: float = 2.0,
    prior_log_sd_sd: float = 1.0,
    control: VariationalControl | None = None,
    rule: tuple[FloatArray, FloatArray] | None = None,
    objective: VariationalObjective | None = None,
) -> VariationalFit:
    """fit_vb, also returning the packed optimum and its ELBO.

    rule: another quadrature rule (nodes, weights) for E[f(Z)], Z ~ N(0, 1), replacing
    Gauss-Hermite; the tests use statsmodels' rule to reproduce its optimum exactly.
    objective: the ELBO with its sums over rows supplied from elsewhere (a subclass of
    VariationalObjective built on data's structure, as the Dask fit's); its priors and rule
    are used, not the arguments."""
    control = control or VariationalControl()
    started = time.perf_counter()
    if objective is None:
        objective = VariationalObjective(
            data, prior_fe_sd, prior_log_sd_sd, control.n_gauss_hermite, rule=rule
        )
    packed0, mean_curvature, fe_curvature = start_parameters(objective, control)
    p, c, n = objective.n_fixed, objective.n_blocks, objective.n_means

    # The q of each log SD is profiled out: for given q of the random effects its optimum is a
    # 1-d root (optimal_log_sd), and by the envelope theorem the gradient of the profiled ELBO
    # is the partial gradient there. This removes the stiff exp(2 s^2 - 2 m) factor from the
    # quasi-Newton search, whose line searches otherwise overflow it.
    tau = np.zeros(objective.size, dtype=bool)
    tau[p : p + c] = True
    tau[n + p : n + p + c] = True
    free = np.flatnonzero(~tau)

    # Optimizer coordinates y over the free entries: beta means = beta0 + T y (T T' = inverse
    # start curvature of the fixed effects, so unscaled, correlated columns such as age and age^2
    # are whitened), random-effect means scaled by 1 / sqrt(their curvature), log SDs as they
    # are (their curvature is about 2 at the optimum). A linear change of the optimizer's
    # variables only: the family stays mean field in the original beta.
    chol = scipy.linalg.cholesky(fe_curvature, lower=False)
    transform = scipy.linalg.solve_triangular(chol, np.eye(p), lower=False)
    scale_full = np.ones(objective.size)
    scale_full[p:n] = 1.0 / np.sqrt(mean_curvature[p:])
    scale = scale_full[free]
    anchor = packed0[free]

    def to_packed(y: FloatArray) -> FloatArray:
        packed = packed0.copy()
        values = anchor + scale * y
        values[:p] = anchor[:p] + transform @ y[:p]
        packed[free] = values
        return objective.with_optimal_log_sd(packed, control)

    gradient_evaluations = 0

    def negative_elbo(y: FloatArray) -> tuple[float, FloatArray]:
        nonlocal gradient_evaluations
        gradient_evaluations += 1
        value, grad = objective.elbo_and_gradient(to_packed(y))
        if not np.isfinite(value):
            return float("inf"), np.zeros_like(y)
        grad_y = scale * grad[free]
        grad_y[:p] = transform.T @ grad[:p]
        return -value, -grad_y

    result = scipy.optimize.minimize(
        negative_elbo,
        np.zeros(len(free)),
        jac=True,
        method="L-BFGS-B",
        options={
            "ftol": control.ftol,
            "gtol": control.gtol,
            "maxiter": control.max_iter,
            "maxcor": control.max_corrections,
            "maxfun": 2 * control.max_iter,
        },
    )
    y = np.asarray(result.x, dtype=np.float64)
    packed = to_packed(y)
    elbo_value, _ = objective.elbo_and_gradient(packed)
    _, grad_y = negative_elbo(y)
    grad_norm = float(np.max(np.abs(grad_y)))
    # L-BFGS-B may also stop on ftol at a tiny relative change; what counts is the gradient.
    converged = grad_norm <= control.gtol_converged
    q = objective.unpack(packed)

    theta = np.exp(q.log_sd_mean)
    beta = q.beta_mean.copy()
    if data.blocks:
        loglik = objective.laplace_loglik(theta, beta)
    else:
        loglik = objective.glm_value(beta) + data.log_binomial_constant
    summary = OptSummary(
        optimizer="L-BFGS-B (scipy), preconditioned, log-SD factors profiled",
        objective=(
            f"negative ELBO (mean-field VB); ELBO = {elbo_value:.10g} as statsmodels' vb_elbo, "
            f"{elbo_value + objective.elbo_constant:.10g} with all constants"
        ),
        converged=converged,
        message=str(result.message),
        iterations=int(result.nit),
        evaluations=objective.evaluations,
        gradient_evaluations=gradient_evaluations,
        pirls_iterations=0,
        pirls_failures=0,
        final_gradient_norm=grad_norm,
        newton_polish=False,
        tolerances={key: float(value) for key, value in asdict(control).items()},
        seconds=time.perf_counter() - started,
    )
    warnings: tuple[FitWarning, ...] = ()
    if not converged:
        warnings = (
            FitWarning(
                f"variational optimizer did not converge: {result.message} "
                f"(largest gradient entry {grad_norm:.3g})",
                ConvergenceWarning,
            ),
        )
    output = FitOutput(
        method="vb_meanfield",
        theta=theta,
        beta=beta,
        vcov_beta=np.diag(q.beta_sd**2),
        loglik=loglik,
        loglik_label=LOGLIK_LABEL,
        ranef=tuple(mb[:, None].copy() for mb in q.b_mean),
        ranef_cov=tuple((sb**2)[:, None, None] for sb in q.b_sd),
        opt_summary=summary,
        converged=converged,
        singular=False,
        theta_cov=np.diag(q.log_sd_sd**2),
        warnings=warnings,
        elbo=float(elbo_value + objective.elbo_constant),
    )
    return VariationalFit(output, packed, elbo_value, objective)


@dataclass(frozen=True)
class MeanFieldVB(Method):
    """Mean-field variational Bayes (statsmodels' BinomialBayesMixedGLM.fit_vb model and family)
    with N(0, prior_fe_sd^2) priors on the fixed effects and N(0, prior_log_sd_sd^2) priors on
    the log random-effect SDs; independent variance components only. Fitted on the user's
    columns as they are: the priors are stated in those units, so rescaling a column would
    change the model."""

    prior_fe_sd: float = 2.0
    prior_log_sd_sd: float = 1.0
    control: VariationalControl = field(default_factory=VariationalControl)

    name: ClassVar[str] = "vb_meanfield"
    posterior: ClassVar[bool] = True
    control_type: ClassVar[type] = VariationalControl

    def __post_init__(self) -> None:
        require_positive(self, *("prior_fe_sd", "prior_log_sd_sd"))

    @classmethod
    def from_arguments(
        cls,
        *,
        prior_fe_sd: float | None = None,
        prior_log_sd_sd: float | None = None,
        control: Any = None,
        n_agq: int | None = None,
        **others: Any,
    ) -> MeanFieldVB:
        return cls(
            **prior_settings(
                cls.name, VariationalControl, prior_fe_sd, prior_log_sd_sd, control, n_agq, others
            )
        )

    @property
    def title(self) -> str:
        return "mean-field variational Bayes (posterior means)"

    @property
    def tolerances(self) -> dict[str, float | str]:
        return {
            **asdict(self.control),
            "prior_fe_sd": self.prior_fe_sd,
            "prior_log_sd_sd": self.prior_log_sd_sd,
        }

    def check(self, model: ModelData, design: Any = None) -> None:
        super().check(model, design)
        # Its theta holds SDs: lme4's one-column terms only, not glmmTMB's structured ones.
        check_unstructured(model, self.name)
        check_independent_terms(model, design)

    def fit(self, model: ModelData, start: Start | None = None) -> FitOutput:
        if start is not None:
            raise ValueError(f"method {self.name!r} starts from its own deterministic start")
        objective = VariationalObjective(
            model, self.prior_fe_sd, self.prior_log_sd_sd, self.control.n_gauss_hermite
        )
        output = fit_vb(model, control=self.control, objective=objective)
        return require_finite(with_posterior_warnings(objective, output, self.control))


def with_posterior_warnings(
    objective: VariationalObjective, output: FitOutput, control: VariationalControl
) -> FitOutput:
    """output with the warnings about a posterior that the data barely inform
    (posterior_checks.py): separation by the fixed effects when a posterior mean lies far in
    its prior's tail, separation within groups when a log SD's posterior stays as wide as its
    prior (the objective's fixed_effect_separation and group_separation decide), and otherwise
    a variance the likelihood favours at zero (variance_boundary, with the objective's Laplace
    log-likelihood). Nothing is checked for non-finite estimates."""
    found: list[FitWarning] = []
    # Separation said possible but not checked (objective.separation_checked False: a Dask
    # fit): reported, while the checks that a found separation would stop still run.
    possible: list[FitWarning] = []
    said = found if objective.separation_checked else possible
    finite = np.all(np.isfinite(output.beta)) and np.all(np.isfinite(output.theta))
    if finite and in_prior_tail(output.beta, objective.prior_fe_sd, control.separation_prior_sds):
        fixed = objective.fixed_effect_separation()
        if fixed is not None:
            said.append(fixed)
    if finite and not found and output.theta_cov is not None:
        # theta = exp(posterior mean log SD); theta_cov: the log SDs' posterior variances
        loose = loose_log_sds(
            np.log(output.theta),
            np.sqrt(np.diag(output.theta_cov)),
            objective.prior_log_sd_sd,
            control.separation_prior_sds,
        )
        grouped = objective.group_separation(loose) if loose else None
        if grouped is not None:
            said.append(grouped)
    if finite and not found:
        # Under separation the likelihood is no guide to the variances: that warning says it.
        found.extend(
            variance_boundary(objective.data, output.theta, output.beta, objective.laplace_loglik)
        )
    if not found and not possible:
        return output
    return replace(output, warnings=output.warnings + tuple(possible) + tuple(found))
