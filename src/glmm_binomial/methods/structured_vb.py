"""Structured variational Bayes: (beta, b) jointly Gaussian, the variance parameters apart.

The model (statsmodels' BinomialBayesMixedGLM priors, extended to correlated terms):

    beta_j ~ N(0, prior_fe_sd^2),   successes_i ~ Binomial(trials_i, expit(eta_i)),
    eta = X beta + Z b + offset,    b_tj ~ N(0, Sigma_t) for each level j of block t,
    k_t = 1:  Sigma_t = s_t^2,                  log s_t ~ N(0, prior_log_sd_sd^2);
    k_t >= 2: Sigma_t = diag(s) R diag(s),      log s_tc ~ N(0, prior_log_sd_sd^2) each,
              R ~ LKJ(lkj_eta) (density proportional to det(R)^(lkj_eta - 1)).

The variational family is q(beta, b) q(phi) (partially factorized; Goplerud, Papaspiliopoulos
and Zanella, Biometrika 2024, keep the same split between the effects and the variances):

- q(beta, b) = N(m, Omega^{-1}) with Omega = [X, Z]' W [X, Z] + blockdiag(I / prior_fe_sd^2,
  E[Sigma_t^{-1}] per level), W diagonal with one free weight per row. That is the pattern of
  the Laplace Hessian, and no restriction: the Gaussian maximizing the ELBO has exactly this
  precision (Opper and Archambeau 2009: at the optimum Omega = -E_q[Hessian of log p]), with
  w_i = trials_i E_q[expit'(eta_i)]. In the coordinates u of factor.py (b = Lambda u with
  Lambda Lambda' = E[Sigma^{-1}]^{-1} per block) the (u, u) block of Omega is H = Lambda' Z' W
  Z Lambda + I, the blocked factor the Laplace fit uses (nested chains, crossed Schur
  complements, never a dense q x q); beta is eliminated through the p x p Schur complement
  S = X' W X + I / prior_fe_sd^2 - X' W Z Lambda H^{-1} Lambda' Z' W X, so Cov(beta) = S^{-1}.
- q(phi_t) for each block: k_t = 1, log s_t ~ N(mu, sigma^2); k_t >= 2, log s_t ~ N(mu, C)
  (full k x k covariance) times y ~ N(m_y, V_y) on the canonical partial correlations'
  arctanh (R's Cholesky factor built from z = tanh(y) as Stan does). Under LKJ(eta) the
  partial correlation of columns (i, j), i > j (0-based), is 2 Beta(b, b) - 1 with
  b = eta + (k - 2 - j) / 2, so the prior density of y is prod 2^(1 - 2b) / B(b, b)
  cosh(y)^(-2b); and log det R = -2 sum log cosh(y).

The ELBO, with every constant (a lower bound on the log evidence, log p(y), priors included):

    sum_i [log C(m_i, k_i) + k_i E[eta_i] - m_i E[log(1 + e^eta_i)]]
    + E[log p(beta)] + sum_t E[log p(b_t | Sigma_t)] + E[log p(phi)] + entropy(q),

    E[log p(b_t | Sigma_t)] = -n_t k_t / 2 log(2 pi) - n_t / 2 E[log det Sigma_t]
                              - tr(E[Sigma_t^{-1}] A_t) / 2,   A_t = sum_j E[b_tj b_tj'],

with E[eta_i] = x_i' m_beta + (Z m_b)_i and Var(eta_i) = r_i' S^{-1} r_i + a_i' H^{-1} a_i
(a_i the row's Z Lambda values, r_i = x_i - G' a_i, G = H^{-1} Lambda' Z' W X). Closed forms:
E[s_c^-1 s_d^-1] = exp(-mu_c - mu_d + (C_cc + C_dd + 2 C_cd) / 2), and E[Sigma^{-1}]_cd =
E[s_c^-1 s_d^-1] E[R^{-1}]_cd (q(log s) and q(y) are independent). E[R^{-1}] is a product
Gauss-Hermite cubature over y (one dimension for k = 2, exact to rounding for the smooth
cosh^2 there). E[log(1 + e^eta)] (rows, and E[log cosh y] = E[log(1 + e^(2y))] - m_y - log 2)
is Gauss-Hermite quadrature with nodes chosen per row from its SD (QUADRATURE_RULES: error
below 1e-10 per trial up to SD 2.15); the ELBO is exact up to that.

Where the pieces live: gaussian_expectations.py (the Gauss-Hermite expectations of the rows
and of log cosh), variance_factor.py (q(phi), its priors and ELBO terms with their exact
gradient), structured_rows.py (what q(beta, b) computes on a set of rows holding whole levels
of every grouping factor: the blocked factor, G, Var(eta_i), the Newton direction in u), this
module (q(beta)'s algebra from the sets' p-dimensional sums, the inner loop's decisions, the
ELBO and the fit). The sets of rows are one in memory and the partitions on Dask
(distributed/structured_vb.py), through one protocol, so that both run the same algorithm.

Optimization: q(beta, b) given q(phi) by fixed-point Newton iterations (the inner loop:
weights w from the current q, then a Newton step on the means with the new Omega; the ELBO
is concave in the means for fixed Omega, so steps are halved until it does not decrease),
warm-started; q(phi) by BFGS (numerics.quasi_newton) on the ELBO with q(beta, b) profiled out,
whose exact gradient is the partial gradient in phi at the inner optimum (envelope theorem):
only A_t enters. The fixed point of the weights can repel (the weights and the means then
swing further each iteration, as in nested_slope+vb:81 of bench/fuzz_dask.py, near a variance
the data put at zero): where the Newton decrement grows damping_after iterations running, the
weights move only part of the way to their fixed-point values from then on in the fit (halved
each time, down to min_damping), which turns a swing of factor -r into one of 1 - d (1 + r).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.special
from numpy.typing import NDArray

from glmm_binomial.diagnostics import (
    ConvergenceWarning,
    FitWarning,
    IdentifiabilityWarning,
    SeparationWarning,
)
from glmm_binomial.methods.base import Method, Start, prior_settings, require_positive
from glmm_binomial.methods.estimates import FitOutput, require_finite
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.methods.posterior_checks import (
    fixed_effect_separation,
    group_separation,
    in_prior_tail,
    variance_boundary,
)
from glmm_binomial.methods.structured_rows import DirectionShare, FinishShare, StructuredRows
from glmm_binomial.methods.variance_factor import VarianceFactor
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.validation import check_unstructured
from glmm_binomial.numerics.gaussian_expectations import LOG_2PI
from glmm_binomial.numerics.optimize import OptSummary
from glmm_binomial.numerics.quasi_newton import QuasiNewtonResult, minimize_bfgs

FloatArray = NDArray[np.float64]

LOGLIK_LABEL = "Laplace approximation at the posterior means"


@dataclass(frozen=True)
class StructuredVBControl:
    """Tolerances and caps of the structured variational fit (recorded in OptSummary).

    inner_tol: the inner loop (q(beta, b) given q(phi)) stops when the Newton decrement of the
        means (ELBO units) is below it and no row weight moved by more than weight_tol times
        the largest weight (then it takes that last Newton step);
        final_inner_tol, final_weight_tol: the same for the last evaluation, at the optimum.
    search_step: when the Newton step moves no E[eta_i] by more than this (log-odds), the
        inner loop takes it without evaluating the ELBO there first (a line search only for
        longer steps, where the quadratic model may overshoot).
    inner_max_iter, max_halvings: caps of the inner loop and of its step halvings.
    damping_after, min_damping: where the Newton decrement grows this many iterations running,
        the weights' update is halved (module docstring), down to min_damping.
    gtol, ftol, max_iter, max_step, armijo, max_backtracks: BFGS (numerics.quasi_newton) over
        the variance parameters' q (gradient in scaled coordinates, relative ELBO change,
        iterations, the longest step in the scaled coordinates, the sufficient decrease of a
        step and the trial step lengths of one line search: each trial is an inner loop, and
        on Dask its round trips).
    gtol_converged: converged when the largest scaled gradient entry at the end is below it.
    start_sweeps, sweep_tol: the start is coordinate ascent (q(beta, b) for q(phi), then q(phi)
        for q(beta, b)) for at most start_sweeps sweeps, stopped when a sweep gains less than
        sweep_tol times the ELBO's size; the profiled optimization goes on from there.
    cubature_nodes: Gauss-Hermite nodes per dimension of the cubature over the correlation
        parameters (k >= 2), reduced so that the product rule keeps at most max_cubature_nodes.
    separation_information: the fixed effects are checked for separation (linear programs)
        when along some direction the data add less than this times the prior's precision,
    separation_prior_sds: or when a posterior mean is more than this many prior SDs from 0.
    """

    inner_tol: float = 1e-4
    weight_tol: float = 1e-3
    final_inner_tol: float = 1e-10
    final_weight_tol: float = 1e-8
    search_step: float = 0.25
    inner_max_iter: int = 200
    max_halvings: int = 40
    damping_after: int = 3
    min_damping: float = 0.125
    gtol: float = 1e-5
    ftol: float = 1e-15
    max_iter: int = 500
    max_step: float = 2.0
    armijo: float = 1e-4
    max_backtracks: int = 40
    gtol_converged: float = 1e-4
    start_sweeps: int = 1
    sweep_tol: float = 1e-6
    cubature_nodes: int = 16
    max_cubature_nodes: int = 4096
    separation_information: float = 1.0
    separation_prior_sds: float = 1.5
    positive_settings: ClassVar[frozenset[str]] = frozenset({"max_step", "min_damping"})


# --- q(beta, b): the Gaussian factor through the blocked factor ----------------------------
Run = Callable[..., list[Any]]
"""run(method, **shared): `method` of every set of rows (structured_rows.StructuredRows, or a
Dask partition holding one) with the keyword arguments `shared`, the answers in a fixed order
(distributed/runner.py's protocol)."""


def local_run(rows: StructuredRows) -> Run:
    """The Run over the one set of rows held in this process."""

    def run(method: str, **shared: Any) -> list[Any]:
        return [getattr(rows, method)(**shared)]

    return run


@dataclass
class Covariance:
    """What the client holds of Omega^{-1} for one set of row weights: Cov(beta) = S^{-1},
    log det S and log det H (summed over the sets of rows), and tr Cov(u) (known once the
    direction is computed)."""

    schur_inverse: FloatArray
    logdet_schur: float
    logdet_h: float
    trace_u: float = math.nan


@dataclass
class InnerResult:
    """q(beta, b) at the end of an inner loop: beta's mean, the covariance, the ELBO's terms of
    q(beta, b) (gaussian_terms), the second moments A_t of b per block, |u|^2, and whether the
    loop converged in how many iterations."""

    beta: FloatArray
    covariance: Covariance
    gaussian_value: float
    second_moments: list[FloatArray]
    u_square: float
    converged: bool
    iterations: int


class StructuredObjective:
    """The ELBO of the structured family: the rows and random effects' shares (from the sets
    of rows, structured_rows.py, through `advance` and `read`), q(beta)'s algebra and the inner
    loop's decisions here, and the variance factor.

    data: the model (in memory: its rows, held by one StructuredRows; on Dask: the names, the
    blocks with every level and the binomial constant, without rows); advance, read: runners
    over the sets of rows for calls that move their state and for reads (None: one set on
    data's rows); column_rms: the root mean square of each block's random-effect columns over
    all rows (the variance factor's start; None: from data's rows)."""

    separation_checked: ClassVar[bool] = True
    """Whether fixed_effect_separation and group_separation decide (their linear programs on
    the rows); a Dask fit's objective only says separation is possible, and the checks after
    them (variance_boundary) still run."""

    def __init__(
        self,
        data: ModelData,
        prior_fe_sd: float = 2.0,
        prior_log_sd_sd: float = 1.0,
        lkj_eta: float = 2.0,
        control: StructuredVBControl | None = None,
        *,
        advance: Run | None = None,
        read: Run | None = None,
        column_rms: list[FloatArray] | None = None,
    ) -> None:
        for name, value in (
            ("prior_fe_sd", prior_fe_sd),
            ("prior_log_sd_sd", prior_log_sd_sd),
            ("lkj_eta", lkj_eta),
        ):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        self.control = control or StructuredVBControl()
        if advance is None:
            rows = StructuredRows(data)
            data = rows.data
            advance = read = local_run(rows)
        self.data = data
        self.advance = advance
        self.read = read or advance
        self.prior_fe_sd = float(prior_fe_sd)
        self.fe_precision = 1.0 / self.prior_fe_sd**2
        self.variance = VarianceFactor(
            self.data,
            prior_log_sd_sd,
            lkj_eta,
            self.control.cubature_nodes,
            self.control.max_cubature_nodes,
            column_rms=column_rms,
        )
        self.n_fixed = self.data.n_fixed
        self.n_random = sum(b.n_levels * b.k for b in self.data.blocks)
        self.beta = np.zeros(self.n_fixed)
        self.lambdas: list[FloatArray] | None = None
        self.evaluations = 0
        self.inner_iterations = 0
        self.inner_failures = 0
        # The share of the way to the fixed-point weights each update moves (module docstring).
        self.damping = 1.0
        self.last: InnerResult | None = None
        self.final = False  # the last evaluation: the final tolerances

    # --- sums over the sets of rows ------------------------------------------------------
    def covariance(self, pieces: list[tuple[FloatArray, float]]) -> Covariance:
        """S = X' W X + I / prior_fe_sd^2 - X' W Z Lambda G from the sets' shares, its inverse
        (Cov(beta)) and log det, and log det H."""
        p = self.n_fixed
        schur = np.zeros((p, p))
        logdet_h = 0.0
        for piece, logdet in pieces:
            schur += piece
            logdet_h += logdet
        schur += self.fe_precision * np.eye(p)
        if p:
            chol = scipy.linalg.cholesky(schur, lower=True)
            logdet_schur = 2.0 * float(np.sum(np.log(np.diag(chol))))
            schur_inverse = scipy.linalg.cho_solve((chol, True), np.eye(p))
        else:
            logdet_schur = 0.0
            schur_inverse = np.zeros((0, 0))
        return Covariance(schur_inverse, logdet_schur, logdet_h)

    def direction(self, cov: Covariance, **settings: Any) -> DirectionShare:
        """The sets' shares of the Newton direction summed (and tr Cov(u) recorded on cov);
        settings: passed on to the sets' direction."""
        p = self.n_fixed
        xg, xwz, g_gu = np.zeros(p), np.zeros(p), np.zeros(p)
        gu_y, weight_change, largest_weight, trace_u = 0.0, 0.0, 1.0, 0.0
        for part in self.advance("direction", schur_inverse=cov.schur_inverse, **settings):
            xg += part.xg
            xwz += part.xwz
            gu_y += part.gu_y
            g_gu += part.g_gu
            weight_change = max(weight_change, part.weight_change)
            largest_weight = max(largest_weight, part.largest_weight)
            trace_u += part.trace_u
        cov.trace_u = trace_u
        return DirectionShare(xg, xwz, gu_y, g_gu, weight_change, largest_weight, trace_u)

    def newton_step(
        self, d_beta: FloatArray, damping: float = 1.0
    ) -> tuple[float, list[Any] | None]:
        """The largest |step in E[eta_i]| over the sets for the step d_beta in beta, and None
        (a subclass whose sets also return the covariance's pieces after the full step, made
        while the client decides, with the weights moved by `damping`, returns these
        pieces)."""
        largest = 0.0
        for part in self.advance("newton_step", d_beta=d_beta):
            largest = max(largest, part)
        return largest, None

    def row_values(self, steps: tuple[float, ...]) -> list[tuple[float, float]]:
        """The rows' value and |u|^2 at each step length along the last Newton step."""
        totals = [[0.0, 0.0] for _ in steps]
        for part in self.read("row_values", steps=steps):
            for total, (value, u_square) in zip(totals, part, strict=True):
                total[0] += value
                total[1] += u_square
        return [(value, u_square) for value, u_square in totals]

    def finish(self, step: float, cov: Covariance, d_beta: FloatArray | None = None) -> FinishShare:
        """The sets' shares at the end of the inner loop summed (the last step, for d_beta in
        beta, taken with length `step`)."""
        row_value, u_square = 0.0, 0.0
        moments = [np.zeros((b.k, b.k)) for b in self.data.blocks]
        answers = self.advance("finish", step=step, schur_inverse=cov.schur_inverse, d_beta=d_beta)
        for part in answers:
            row_value += part.row_value
            u_square += part.u_square
            for total, moment in zip(moments, part.moments, strict=True):
                total += moment
        return FinishShare(row_value, u_square, moments)

    def random_effects(self, cov: Covariance) -> tuple[list[FloatArray], list[FloatArray]]:
        """Posterior means and covariances of every block's random effects, over all levels."""
        ranef, ranef_cov = self.read("random_effects", schur_inverse=cov.schur_inverse)[0]
        return list(ranef), list(ranef_cov)

    @functools.cached_property
    def laplace_objective(self) -> LaplaceObjective:
        """The Laplace deviance on data's rows, made once (it sorts the rows): the log-likelihood
        at the posterior means and the boundary checks evaluate it several times."""
        return LaplaceObjective(self.data)

    def laplace_loglik(self, theta: FloatArray, beta: FloatArray) -> float:
        """The Laplace marginal log-likelihood at (theta, beta)."""
        return -0.5 * self.laplace_objective.deviance(theta, beta)

    def fixed_effect_separation(self) -> FitWarning | None:
        """posterior_checks.fixed_effect_separation on the rows."""
        return fixed_effect_separation(self.data, self.prior_fe_sd)

    def group_separation(self, loose: list[int]) -> FitWarning | None:
        """posterior_checks.group_separation on the rows."""
        return group_separation(self.data, loose)

    # --- the ELBO --------------------------------------------------------------------------
    def gaussian_terms(
        self, beta: FloatArray, cov: Covariance, row_value: float, u_square: float
    ) -> float:
        """The ELBO's terms of q(beta, b) in u coordinates, with E|u|^2 / 2 (what
        tr(E[Sigma^{-1}] A) / 2 is when Lambda Lambda' = E[Sigma^{-1}]^{-1}), constants of the
        rows, beta's prior and the entropy included, but not the terms in the variances
        (log det Lambda: see elbo_at). row_value and u_square: the rows' value and |u|^2 at
        the means."""
        p = self.n_fixed
        q = self.n_random
        return (
            self.data.log_binomial_constant
            + row_value
            - 0.5 * p * math.log(2.0 * math.pi * self.prior_fe_sd**2)
            - 0.5 * self.fe_precision * (float(beta @ beta) + float(np.trace(cov.schur_inverse)))
            - 0.5 * (u_square + cov.trace_u)
            + 0.5 * (p + q) * (1.0 + LOG_2PI)
            - 0.5 * (cov.logdet_h + cov.logdet_schur)
        )

    def inner(self, lambdas: list[FloatArray]) -> InnerResult:
        """q(beta, b) maximizing the ELBO for E[Sigma^{-1}] = (Lambda Lambda')^{-1} per block,
        from the last one (fixed-point weights, Newton steps on the means)."""
        control = self.control
        self.lambdas = lambdas
        beta = self.beta
        # The covariance at the weights the last inner loop ended with (its fixed-point
        # update), the means moved to the new Lambdas.
        cov = self.covariance(self.advance("covariance_pieces", lambdas=lambdas, beta=beta))
        converged = False
        iterations = 0
        growing = 0
        last_decrement = math.inf
        settings: dict[str, Any] = {}
        while True:
            # A Newton step on the means with the covariance at the current weights.
            direction = self.direction(cov, **settings)
            g_beta = direction.xg - self.fe_precision * beta
            d_beta = cov.schur_inverse @ (g_beta - direction.xwz) if self.n_fixed else g_beta
            # g_beta' d_beta + g_u' d_u with d_u = y - G d_beta.
            decrement = float(g_beta @ d_beta + direction.gu_y - direction.g_gu @ d_beta)
            inner_tol = control.final_inner_tol if self.final else control.inner_tol
            weight_tol = control.final_weight_tol if self.final else control.weight_tol
            small_weights = direction.weight_change <= weight_tol * direction.largest_weight
            growing = growing + 1 if decrement > last_decrement else 0
            last_decrement = decrement
            if growing >= control.damping_after and self.damping > control.min_damping:
                self.damping = max(0.5 * self.damping, control.min_damping)
                growing = 0
            if (decrement < inner_tol and small_weights) or (iterations >= control.inner_max_iter):
                converged = decrement < inner_tol and small_weights
                if converged:
                    # The last Newton step costs no factorization: take it (the means' error
                    # is then of the order of the decrement squared).
                    beta = beta + d_beta
                    finished = self.finish(1.0, cov, d_beta)
                else:
                    finished = self.finish(0.0, cov)
                current = self.gaussian_terms(beta, cov, finished.row_value, finished.u_square)
                break
            iterations += 1
            damping = self.damping
            largest_step, stepped = self.newton_step(d_beta, damping)
            settings = {}
            if largest_step < control.search_step:
                # So close that the full step cannot lower the ELBO (it is concave in the
                # means): take it; the next iteration evaluates the rows there.
                beta = beta + d_beta
                if stepped is None:
                    stepped = self.advance("covariance_pieces", step=1.0, damping=damping)
                else:
                    settings = {"stepped": True}  # the sets go on from the step's covariance
                cov = self.covariance(stepped)
                continue
            values = self.row_values((0.0, 1.0))
            base = self.gaussian_terms(beta, cov, *values[0])
            step = 1.0
            accepted = False
            for halving in range(control.max_halvings):
                value = values[1] if halving == 0 else self.row_values((step,))[0]
                trial = self.gaussian_terms(beta + step * d_beta, cov, *value)
                if trial >= base - 1e-13 * abs(base):
                    accepted = True
                    break
                step *= 0.5
            if not accepted:
                converged = decrement < 1e3 * inner_tol
                finished = self.finish(0.0, cov)
                current = base
                break
            beta = beta + step * d_beta
            cov = self.covariance(
                self.advance("covariance_pieces", step=step, trial_weights=True, damping=damping)
            )
        self.inner_iterations += iterations
        if not converged:
            self.inner_failures += 1
        self.beta = beta
        second = [
            lam @ moments @ lam.T for lam, moments in zip(lambdas, finished.moments, strict=True)
        ]
        result = InnerResult(beta, cov, current, second, finished.u_square, converged, iterations)
        self.last = result
        return result

    def evaluate(self, phi: FloatArray) -> tuple[float, FloatArray, InnerResult]:
        """The ELBO with q(beta, b) at its optimum for q(phi), its gradient in phi, and the
        inner result."""
        self.evaluations += 1
        psis = self.variance.precisions(phi)
        lambdas = []
        for psi in psis:
            covariance = np.linalg.inv(psi)
            lambdas.append(np.linalg.cholesky(0.5 * (covariance + covariance.T)))
        inner = self.inner(lambdas)
        return self.elbo_at(phi, inner, lambdas)

    def elbo_at(
        self, phi: FloatArray, inner: InnerResult, lambdas: list[FloatArray]
    ) -> tuple[float, FloatArray, InnerResult]:
        """The ELBO of (q(phi), inner's q(beta, b)) and its partial gradient in phi."""
        value, grad = self.variance.terms(phi, inner.second_moments)
        # gaussian_terms counted E|u|^2 / 2 = tr(E[Sigma^{-1}] A) / 2 (in terms above) and the
        # entropy in u coordinates: log det Cov(b) = log det Cov(u) + 2 log det Lambda.
        logdet_lambda = sum(
            b.n_levels * float(np.sum(np.log(np.diag(lam))))
            for b, lam in zip(self.data.blocks, lambdas, strict=True)
        )
        total = (
            inner.gaussian_value
            + 0.5 * (inner.u_square + inner.covariance.trace_u)
            + logdet_lambda
            + value
        )
        return total, grad, inner


# --- the fit -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StructuredFit:
    """A structured variational fit with what tests and benchmarks look at beyond FitOutput."""

    output: FitOutput
    elbo: float
    phi: FloatArray
    objective: StructuredObjective


def fit_structured_vb(
    data: ModelData,
    prior_fe_sd: float = 2.0,
    prior_log_sd_sd: float = 1.0,
    control: StructuredVBControl | None = None,
    lkj_eta: float = 2.0,
) -> FitOutput:
    """Structured variational Bayes fit (see the module docstring).

    Returns posterior means of beta with their full posterior covariance (vcov_beta), theta
    such that Lambda Lambda' = diag(E[s]) E[R] diag(E[s]) per block (so the SDs shown are
    posterior means of the SDs and the correlations posterior means), posterior means and
    covariances of the random effects, the ELBO (all constants: a lower bound on the log
    evidence) and loglik = the Laplace marginal log-likelihood at those values."""
    return fit_structured_vb_detailed(data, prior_fe_sd, prior_log_sd_sd, control, lkj_eta).output


def fit_structured_vb_detailed(
    data: ModelData,
    prior_fe_sd: float = 2.0,
    prior_log_sd_sd: float = 1.0,
    control: StructuredVBControl | None = None,
    lkj_eta: float = 2.0,
    objective: StructuredObjective | None = None,
) -> StructuredFit:
    """fit_structured_vb, also returning the variance factor's parameters and the objective.

    objective: the ELBO with its sums over rows supplied from elsewhere (a subclass of
    StructuredObjective with its own runners, as distributed/structured_vb.py's; its priors and
    control are used, and data, the priors and control given here are ignored)."""
    started = time.perf_counter()
    if objective is None:
        objective = StructuredObjective(
            data, prior_fe_sd, prior_log_sd_sd, lkj_eta, control or StructuredVBControl()
        )
    control = objective.control
    variance = objective.variance
    # The start: SDs 1, q(beta, b) for them, then q(phi) optimal for that q(beta, b) (one
    # coordinate-ascent step, which lands near the optimum when the data inform the variances
    # well; the profiled optimization below takes it from there).
    phi0 = variance.start()
    with np.errstate(over="ignore", under="ignore"):
        last = -math.inf
        for _ in range(control.start_sweeps):
            value, _, inner = objective.evaluate(phi0)
            phi0 = variance.optimal(phi0, inner.second_moments)
            if value - last < control.sweep_tol * abs(value):
                break
            last = value
    scale = variance.scales()
    gradient_evaluations = 0

    def negative(y: FloatArray) -> tuple[float, FloatArray]:
        nonlocal gradient_evaluations
        gradient_evaluations += 1
        try:
            value, grad, _ = objective.evaluate(phi0 + scale * y)
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError, ArithmeticError):
            # A trial point of the line search far out (SDs overflowing): not a candidate.
            return math.inf, np.zeros_like(y)
        if not np.isfinite(value):
            return math.inf, np.zeros_like(y)
        return -value, -scale * grad

    def search(y0: FloatArray) -> QuasiNewtonResult:
        return minimize_bfgs(
            negative,
            y0,
            np.eye(len(y0)),
            gtol=control.gtol,
            ftol=control.ftol,
            max_iter=control.max_iter,
            max_step=control.max_step,
            armijo=control.armijo,
            max_backtracks=control.max_backtracks,
        )

    with np.errstate(over="ignore", under="ignore"):
        result = search(np.zeros(variance.size))
        phi = phi0 + scale * np.asarray(result.x, dtype=np.float64)
        objective.final = True
        elbo, grad, inner = objective.evaluate(phi)
        if float(np.max(np.abs(scale * grad), initial=0.0)) > control.gtol_converged:
            # The search's looser inner tolerances can stop it short where the profiled ELBO
            # is flat: go on from there with the final (tight) ones.
            result = search(np.asarray(result.x, dtype=np.float64))
            phi = phi0 + scale * np.asarray(result.x, dtype=np.float64)
            elbo, grad, inner = objective.evaluate(phi)
    grad_norm = float(np.max(np.abs(scale * grad), initial=0.0))
    converged = bool(np.isfinite(elbo)) and grad_norm <= control.gtol_converged and inner.converged
    return StructuredFit(
        _output(objective, phi, inner, elbo, result, converged, grad_norm, started),
        elbo,
        phi,
        objective,
    )


def _output(
    objective: StructuredObjective,
    phi: FloatArray,
    inner: InnerResult,
    elbo: float,
    result: QuasiNewtonResult,
    converged: bool,
    grad_norm: float,
    started: float,
) -> FitOutput:
    data = objective.data
    variance = objective.variance
    control = objective.control
    cov = inner.covariance
    assert objective.lambdas is not None
    theta_parts = []
    for t, block in enumerate(data.blocks):
        _, _, mean_sd = variance.sd_moments(phi, t)
        correlation = variance.expected_correlation(phi, t) if block.k > 1 else np.eye(1)
        sigma = mean_sd[:, None] * correlation * mean_sd[None, :]
        low = np.linalg.cholesky(0.5 * (sigma + sigma.T))
        rows, cols = block.lower_indices()
        theta_parts.append(low[rows, cols])
    ranef, ranef_cov = objective.random_effects(cov)
    theta = np.concatenate(theta_parts) if theta_parts else np.zeros(0)
    beta = inner.beta.copy()
    vcov = 0.5 * (cov.schur_inverse + cov.schur_inverse.T)
    loglik = objective.laplace_loglik(theta, beta)
    warnings: list[FitWarning] = []
    if not converged:
        warnings.append(
            FitWarning(
                f"variational optimizer did not converge: {result.message} (largest gradient "
                f"entry {grad_norm:.3g}, inner loop converged: {inner.converged})",
                ConvergenceWarning,
            )
        )
    found = posterior_warnings(objective, phi, cov, beta)
    warnings.extend(found)
    # Separation that was not checked (a Dask fit: only possible) does not stop the next check.
    decided = [
        w for w in found if objective.separation_checked or w.category is not SeparationWarning
    ]
    if not decided:
        # Under separation the likelihood is no guide to the variances: that warning says it.
        warnings.extend(variance_boundary(objective.data, theta, beta, objective.laplace_loglik))
    summary = OptSummary(
        optimizer=(
            "BFGS over q(variances), q(beta, b) profiled by fixed-point Newton "
            "iterations on the blocked factor"
        ),
        objective=f"negative ELBO (structured VB); ELBO = {elbo:.10g} with all constants",
        converged=converged,
        message=str(result.message),
        iterations=int(result.nit),
        evaluations=objective.evaluations,
        gradient_evaluations=objective.evaluations,
        pirls_iterations=objective.inner_iterations,
        pirls_failures=objective.inner_failures,
        final_gradient_norm=grad_norm,
        newton_polish=False,
        tolerances={key: float(value) for key, value in asdict(control).items()},
        seconds=time.perf_counter() - started,
    )
    return FitOutput(
        method="vb",
        theta=theta,
        beta=beta,
        vcov_beta=vcov,
        loglik=float(loglik),
        loglik_label=LOGLIK_LABEL,
        ranef=tuple(ranef),
        ranef_cov=tuple(ranef_cov),
        opt_summary=summary,
        converged=converged,
        singular=False,
        theta_cov=None,
        warnings=tuple(warnings),
        elbo=float(elbo),
    )


def posterior_warnings(
    objective: StructuredObjective, phi: FloatArray, cov: Covariance, beta_mean: FloatArray
) -> list[FitWarning]:
    """Warnings about a posterior that the data barely inform: a grouping factor with a single
    level, and separation (by the fixed effects, or within groups), whose coefficients or
    variances are then finite only because of the priors. The linear programs that decide
    separation (the objective's fixed_effect_separation and group_separation) run only when
    the posterior gives a reason (posterior_checks.py)."""
    data, control = objective.data, objective.control
    out: list[FitWarning] = []
    for block in data.blocks:
        if block.n_levels < 2:
            out.append(
                FitWarning(
                    f"grouping factor '{block.group}' has a single level: its random-effect "
                    "variance is learned from the prior alone (the posterior of its SD is "
                    "close to the log-normal prior)",
                    IdentifiabilityWarning,
                )
            )
    p = objective.n_fixed
    if p:
        # Information the data add along each direction, relative to the prior's precision.
        schur = np.linalg.inv(cov.schur_inverse)
        data_information = (schur - objective.fe_precision * np.eye(p)) / objective.fe_precision
        weak = float(np.min(np.linalg.eigvalsh(data_information))) < control.separation_information
        if weak or in_prior_tail(beta_mean, objective.prior_fe_sd, control.separation_prior_sds):
            found = objective.fixed_effect_separation()
            if found is not None:
                out.append(found)
                if objective.separation_checked:
                    return out
    variance = objective.variance
    prior_sd = variance.prior_log_sd_sd
    loose = []
    for t in range(len(data.blocks)):
        mean, sd, _ = variance.sd_moments(phi, t)
        if np.any((sd > 0.5 * prior_sd) & (mean > 0.0)):
            loose.append(t)
    grouped = objective.group_separation(loose) if loose else None
    if grouped is not None:
        out.append(grouped)
    return out


@dataclass(frozen=True)
class VariationalBayes(Method):
    """Structured variational Bayes (the module docstring): fixed and random effects jointly
    Gaussian, the variance parameters in their own factor; N(0, prior_fe_sd^2) priors on the
    fixed effects, N(0, prior_log_sd_sd^2) on each log random-effect SD and LKJ(lkj_eta) on the
    correlation matrix of a correlated term. Fitted on the user's columns as they are (the
    priors are stated in those units)."""

    prior_fe_sd: float = 2.0
    prior_log_sd_sd: float = 1.0
    lkj_eta: float = 2.0
    control: StructuredVBControl = field(default_factory=StructuredVBControl)

    name: ClassVar[str] = "vb"
    posterior: ClassVar[bool] = True
    control_type: ClassVar[type] = StructuredVBControl

    def __post_init__(self) -> None:
        require_positive(self, *("prior_fe_sd", "prior_log_sd_sd", "lkj_eta"))

    @classmethod
    def from_arguments(
        cls,
        *,
        prior_fe_sd: float | None = None,
        prior_log_sd_sd: float | None = None,
        control: Any = None,
        n_agq: int | None = None,
        **others: Any,
    ) -> VariationalBayes:
        return cls(
            **prior_settings(
                cls.name, StructuredVBControl, prior_fe_sd, prior_log_sd_sd, control, n_agq, others
            )
        )

    @property
    def title(self) -> str:
        return "structured variational Bayes (posterior means and SDs)"

    @property
    def tolerances(self) -> dict[str, float | str]:
        return {
            **asdict(self.control),
            "prior_fe_sd": self.prior_fe_sd,
            "prior_log_sd_sd": self.prior_log_sd_sd,
            "lkj_eta": self.lkj_eta,
        }

    def check(self, model: ModelData, design: Any = None) -> None:
        super().check(model, design)
        # Its variance factor is on lme4's SDs and correlations, not on structured terms.
        check_unstructured(model, self.name)

    def fit(self, model: ModelData, start: Start | None = None) -> FitOutput:
        if start is not None:
            raise ValueError(f"method {self.name!r} starts from its own deterministic start")
        return require_finite(
            fit_structured_vb(
                model, self.prior_fe_sd, self.prior_log_sd_sd, self.control, self.lkj_eta
            )
        )
