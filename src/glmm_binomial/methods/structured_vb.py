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
gradient), this module (q(beta, b) through the blocked factor, the ELBO and the fit).

Optimization: q(beta, b) given q(phi) by fixed-point Newton iterations (the inner loop:
weights w from the current q, then a Newton step on the means with the new Omega; the ELBO
is concave in the means for fixed Omega, so steps are halved until it does not decrease),
warm-started; q(phi) by L-BFGS-B on the ELBO with q(beta, b) profiled out, whose exact gradient
is the partial gradient in phi at the inner optimum (envelope theorem): only A_t enters.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special
from numpy.typing import NDArray

from glmm_binomial.diagnostics import (
    ConvergenceWarning,
    FitWarning,
    IdentifiabilityWarning,
)
from glmm_binomial.methods.base import Method, Start, prior_settings, require_positive
from glmm_binomial.methods.estimates import FitOutput, require_finite
from glmm_binomial.methods.laplace import LaplaceObjective, sorted_by_first_factor
from glmm_binomial.methods.posterior_checks import (
    fixed_effect_separation,
    group_separation,
    in_prior_tail,
)
from glmm_binomial.methods.variance_factor import VarianceFactor
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.validation import check_unstructured
from glmm_binomial.numerics.factor import Factor, SelectedInverse, Structure, row_dot
from glmm_binomial.numerics.gaussian_expectations import LOG_2PI, expected_log1pexp
from glmm_binomial.numerics.optimize import OptSummary

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
    gtol, ftol, max_iter, max_corrections: L-BFGS-B over the variance parameters' q (gradient
        in scaled coordinates, relative ELBO change, iterations, memory).
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
    gtol: float = 1e-5
    ftol: float = 1e-15
    max_iter: int = 500
    max_corrections: int = 20
    gtol_converged: float = 1e-4
    start_sweeps: int = 1
    sweep_tol: float = 1e-6
    cubature_nodes: int = 16
    max_cubature_nodes: int = 4096
    separation_information: float = 1.0
    separation_prior_sds: float = 1.5


# --- q(beta, b): the Gaussian factor through the blocked factor ----------------------------
@dataclass
class Covariance:
    """Omega^{-1} of q(beta, b) for one set of row weights, in factor.py's u coordinates."""

    weights: FloatArray
    factor: Factor
    inverse: SelectedInverse
    g1: FloatArray  # (n1, k1, p): G = H^{-1} Lambda' Z' W X, first part
    g2: FloatArray  # (q2, p)
    schur_inverse: FloatArray  # S^{-1} = Cov(beta)
    logdet_schur: float
    row_var: FloatArray  # Var_q(eta_i)


@dataclass
class GaussianMeans:
    beta: FloatArray
    u1: FloatArray
    u2: FloatArray


class StructuredObjective:
    """The ELBO of the structured family: rows, q(beta, b) through the blocked factor, and
    the variance factor."""

    def __init__(
        self,
        data: ModelData,
        prior_fe_sd: float = 2.0,
        prior_log_sd_sd: float = 1.0,
        lkj_eta: float = 2.0,
        control: StructuredVBControl | None = None,
    ) -> None:
        for name, value in (
            ("prior_fe_sd", prior_fe_sd),
            ("prior_log_sd_sd", prior_log_sd_sd),
            ("lkj_eta", lkj_eta),
        ):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        self.control = control or StructuredVBControl()
        self.data, self.structure = sorted_by_first_factor(data)
        self.prior_fe_sd = float(prior_fe_sd)
        self.fe_precision = 1.0 / self.prior_fe_sd**2
        self.variance = VarianceFactor(
            self.data,
            prior_log_sd_sd,
            lkj_eta,
            self.control.cubature_nodes,
            self.control.max_cubature_nodes,
        )
        st = self.structure
        self.n_fixed = self.data.n_fixed
        # The fixed-effects design transposed (p x n): its columns contiguous in memory.
        self.xt = np.ascontiguousarray(self.data.x.T)
        self.n_random = st.q1 + st.q2
        self.means = GaussianMeans(
            np.zeros(self.n_fixed), np.zeros((st.n1, st.k1)), np.zeros(st.q2)
        )
        self.row_weights = 0.25 * self.data.trials
        self.lambdas: list[FloatArray] | None = None
        self.evaluations = 0
        self.inner_iterations = 0
        self.inner_failures = 0
        self.last: InnerResult | None = None
        self.final = False  # the last evaluation: the final tolerances

    # --- coordinates ---------------------------------------------------------------------
    def block_u(self, means: GaussianMeans, t: int) -> FloatArray:
        """The u means of block t as (n_levels, k)."""
        st, b = self.structure, self.data.blocks[t]
        if t in st.first_blocks:
            return means.u1[:, st.first_columns[st.first_blocks.index(t)]]
        offset = st.rest_offsets[st.rest.index(t)]
        return means.u2[offset + np.arange(b.n_levels)[:, None] * b.k + np.arange(b.k)]

    def set_block_u(self, means: GaussianMeans, t: int, values: FloatArray) -> None:
        st, b = self.structure, self.data.blocks[t]
        if t in st.first_blocks:
            means.u1[:, st.first_columns[st.first_blocks.index(t)]] = values
            return
        offset = st.rest_offsets[st.rest.index(t)]
        means.u2[offset + np.arange(b.n_levels)[:, None] * b.k + np.arange(b.k)] = values

    def block_g(self, cov: Covariance, t: int) -> FloatArray:
        """Rows of G for block t: (n_levels, k, p)."""
        st, b = self.structure, self.data.blocks[t]
        if t in st.first_blocks:
            return cov.g1[:, st.first_columns[st.first_blocks.index(t)], :]
        offset = st.rest_offsets[st.rest.index(t)]
        return cov.g2[offset + np.arange(b.n_levels)[:, None] * b.k + np.arange(b.k)]

    def relambda(self, lambdas: list[FloatArray]) -> None:
        """Move the means to new Lambdas keeping b = Lambda u fixed (the warm start)."""
        if self.lambdas is not None:
            for t, (old, new) in enumerate(zip(self.lambdas, lambdas, strict=True)):
                b = self.block_u(self.means, t) @ old.T
                u = scipy.linalg.solve_triangular(new, b.T, lower=True).T
                self.set_block_u(self.means, t, u)
        self.lambdas = lambdas

    # --- covariance ----------------------------------------------------------------------
    def covariance(
        self, a1: FloatArray, a2: FloatArray, lambda1: FloatArray, w: FloatArray
    ) -> Covariance:
        """Omega^{-1} for the row weights w: H's factor and selected inverse, G, S^{-1} and
        Var(eta_i). The design's columns are held transposed (p x n) so that every product
        over the rows is along contiguous memory."""
        st = self.structure
        xt = self.xt
        p = self.n_fixed
        factor = st.factorize(a1, a2, w, lambda1)
        inverse = factor.selected_inverse()
        wxt = xt * w
        g1, g2, zgt = self._solve_columns(factor, a1, a2, wxt)
        rt = xt - zgt  # rows r_i = x_i - G' a_i, transposed
        schur = np.empty((p, p))
        for j in range(p):
            for k in range(j + 1):
                schur[j, k] = schur[k, j] = 0.5 * (float(wxt[j] @ rt[k]) + float(wxt[k] @ rt[j]))
        schur += self.fe_precision * np.eye(p)
        if p:
            chol = scipy.linalg.cholesky(schur, lower=True)
            logdet_schur = 2.0 * float(np.sum(np.log(np.diag(chol))))
            schur_inverse = scipy.linalg.cho_solve((chol, True), np.eye(p))
            solved = schur_inverse @ rt
            row_var = rt[0] * solved[0]
            for j in range(1, p):
                row_var += rt[j] * solved[j]
        else:
            logdet_schur = 0.0
            schur_inverse = np.zeros((0, 0))
            row_var = np.zeros(st.n)
        row_var += row_inverse_quadratic(st, factor, inverse, a1, a2)
        return Covariance(w, factor, inverse, g1, g2, schur_inverse, logdet_schur, row_var)

    def _solve_columns(
        self, factor: Factor, a1: FloatArray, a2: FloatArray, columns: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """G = H^{-1} (Z Lambda)' C for the columns C, given transposed (p x n), split as
        (n1, k1, p) and (q2, p), and (Z Lambda G)' (p x n). One grouping factor (H block
        diagonal): every column through the blocks at once; otherwise one solve per column."""
        st = self.structure
        p = columns.shape[0]
        if p == 0:
            return np.zeros((st.n1, st.k1, 0)), np.zeros((st.q2, 0)), np.zeros((0, st.n))
        zgt = np.empty((p, st.n))
        if len(st.levels) == 1 and not st.r2:
            t1 = np.empty((st.n1, st.k1, p))
            for c in range(st.k1):
                for j in range(p):
                    t1[:, c, j] = st.level_sum(a1[:, c] * columns[j])
            linv = factor.linv[0]
            g1 = np.einsum("jba,jbc,jcp->jap", linv, linv, t1)
            for j in range(p):
                zgt[j] = a1[:, 0] * st.level_values(g1[:, 0, j])
                for c in range(1, st.k1):
                    zgt[j] += a1[:, c] * st.level_values(g1[:, c, j])
            return g1, np.zeros((0, p)), zgt
        g1 = np.empty((st.n1, st.k1, p))
        g2 = np.empty((st.q2, p))
        for j in range(p):
            s1, s2 = factor.solve(*st.transpose_times(a1, a2, columns[j]))
            g1[:, :, j] = s1
            g2[:, j] = s2
            zgt[j] = st.times(a1, a2, s1, s2)
        return g1, g2, zgt

    def _trace_random(self, cov: Covariance) -> float:
        """tr Cov_q(u) = tr H^{-1} + tr(G S^{-1} G')."""
        z = cov.inverse
        total = sum(float(np.trace(dg, axis1=1, axis2=2).sum()) for dg in z.diag)
        if z.zrr is not None:
            total += float(np.trace(z.zrr))
        if self.n_fixed:
            for g in (cov.g1.reshape(-1, self.n_fixed), cov.g2):
                total += float(np.sum((g @ cov.schur_inverse) * g))
        return total

    def gaussian_terms(self, means: GaussianMeans, cov: Covariance, row_value: float) -> float:
        """The ELBO's terms of q(beta, b) in u coordinates, with E|u|^2 / 2 (what
        tr(E[Sigma^{-1}] A) / 2 is when Lambda Lambda' = E[Sigma^{-1}]^{-1}), constants of the
        rows, beta's prior and the entropy included, but not the terms in the variances
        (log det Lambda: see elbo_at)."""
        p = self.n_fixed
        q = self.n_random
        beta = means.beta
        u_square = float(np.sum(means.u1 * means.u1) + np.sum(means.u2 * means.u2))
        return (
            self.data.log_binomial_constant
            + row_value
            - 0.5 * p * math.log(2.0 * math.pi * self.prior_fe_sd**2)
            - 0.5 * self.fe_precision * (float(beta @ beta) + float(np.trace(cov.schur_inverse)))
            - 0.5 * (u_square + self._trace_random(cov))
            + 0.5 * (p + q) * (1.0 + LOG_2PI)
            - 0.5 * (cov.factor.logdet + cov.logdet_schur)
        )

    def inner(self, lambdas: list[FloatArray]) -> InnerResult:
        """q(beta, b) maximizing the ELBO for E[Sigma^{-1}] = (Lambda Lambda')^{-1} per block,
        from the last one (fixed-point weights, Newton steps on the means)."""
        data, st, control = self.data, self.structure, self.control
        self.relambda(lambdas)
        a1, a2 = st.z_lambda(data, lambdas)
        lambda1 = st.first_lambda(lambdas)
        x, k, m = data.x, data.successes, data.trials
        means = self.means

        def eta_mean(mn: GaussianMeans) -> FloatArray:
            return x @ mn.beta + st.times(a1, a2, mn.u1, mn.u2) + data.offset

        def row_value(eta: FloatArray, var: FloatArray) -> float:
            """sum_i k_i E[eta_i] - m_i E[log(1 + e^eta_i)]."""
            e, _, _ = expected_log1pexp(eta, var, derivatives=False)
            return float(k @ eta - m @ e)

        def row_derivatives(eta: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
            """The rows' derivatives in E[eta_i] (k_i - m_i E[expit]) and the fixed-point
            weights (twice the derivative in -Var(eta_i): m_i E[expit'])."""
            _, d_mean, d_var = expected_log1pexp(eta, var, value=False)
            return k - m * d_mean, 2.0 * m * d_var

        # The weights the last inner loop ended with: its fixed-point update, the start.
        w_new = self.row_weights
        eta = eta_mean(means)
        converged = False
        iterations = 0
        current = -math.inf
        while True:
            # The covariance at the new weights, then a Newton step on the means with it.
            cov = self.covariance(a1, a2, lambda1, np.maximum(w_new, 1e-300))
            g, w_next = row_derivatives(eta, cov.row_var)
            g_beta = x.T @ g - self.fe_precision * means.beta
            g1, g2 = st.transpose_times(a1, a2, g)
            g1 = g1 - means.u1
            g2 = g2 - means.u2
            y1, y2 = cov.factor.solve(g1, g2)
            wz = cov.weights * st.times(a1, a2, y1, y2)
            d_beta = cov.schur_inverse @ (g_beta - x.T @ wz) if self.n_fixed else g_beta
            d1 = y1 - cov.g1 @ d_beta
            d2 = y2 - cov.g2 @ d_beta
            decrement = float(g_beta @ d_beta + np.sum(g1 * d1) + np.sum(g2 * d2))
            weight_change = float(np.max(np.abs(w_next - cov.weights), initial=0.0))
            inner_tol = control.final_inner_tol if self.final else control.inner_tol
            weight_tol = control.final_weight_tol if self.final else control.weight_tol
            small_weights = weight_change <= weight_tol * float(np.max(cov.weights, initial=1.0))
            d_eta = x @ d_beta + st.times(a1, a2, d1, d2)
            largest_step = float(np.max(np.abs(d_eta), initial=0.0))
            if (decrement < inner_tol and small_weights) or (iterations >= control.inner_max_iter):
                converged = decrement < inner_tol and small_weights
                if converged:
                    # The last Newton step costs no factorization: take it (the means' error
                    # is then of the order of the decrement squared).
                    means = GaussianMeans(means.beta + d_beta, means.u1 + d1, means.u2 + d2)
                    eta = eta + d_eta
                current = self.gaussian_terms(means, cov, row_value(eta, cov.row_var))
                w_new = w_next
                break
            iterations += 1
            if largest_step < control.search_step:
                # So close that the full step cannot lower the ELBO (it is concave in the
                # means): take it; the next iteration evaluates the rows there.
                means = GaussianMeans(means.beta + d_beta, means.u1 + d1, means.u2 + d2)
                eta = eta + d_eta
                w_new = w_next
                continue
            base = self.gaussian_terms(means, cov, row_value(eta, cov.row_var))
            step = 1.0
            accepted = False
            for _ in range(control.max_halvings):
                trial_means = GaussianMeans(
                    means.beta + step * d_beta, means.u1 + step * d1, means.u2 + step * d2
                )
                trial_eta = eta + step * d_eta
                trial = self.gaussian_terms(trial_means, cov, row_value(trial_eta, cov.row_var))
                if trial >= base - 1e-13 * abs(base):
                    accepted = True
                    break
                step *= 0.5
            if not accepted:
                converged = decrement < 1e3 * inner_tol
                current = base
                w_new = w_next
                break
            means, eta = trial_means, trial_eta
            _, w_new = row_derivatives(eta, cov.row_var)
        self.inner_iterations += iterations
        if not converged:
            self.inner_failures += 1
        self.means = means
        self.row_weights = np.maximum(w_new, 1e-300)
        second = []
        for t, lam in enumerate(lambdas):
            u = self.block_u(means, t)
            gt = self.block_g(cov, t)
            u_cov = cov.inverse.block_covariances(data, t)
            if self.n_fixed:
                u_cov = u_cov + np.einsum("jap,pq,jbq->jab", gt, cov.schur_inverse, gt)
            moments = u.T @ u + u_cov.sum(axis=0)
            second.append(lam @ moments @ lam.T)
        result = InnerResult(means, cov, current, second, converged, iterations, eta)
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
        u_square = float(np.sum(inner.means.u1**2) + np.sum(inner.means.u2**2))
        u_trace = self._trace_random(inner.covariance)
        logdet_lambda = sum(
            b.n_levels * float(np.sum(np.log(np.diag(lam))))
            for b, lam in zip(self.data.blocks, lambdas, strict=True)
        )
        total = inner.gaussian_value + 0.5 * (u_square + u_trace) + logdet_lambda + value
        return total, grad, inner


@dataclass
class InnerResult:
    means: GaussianMeans
    covariance: Covariance
    gaussian_value: float
    second_moments: list[FloatArray]
    converged: bool
    iterations: int
    eta: FloatArray


def row_inverse_quadratic(
    st: Structure, factor: Factor, inverse: SelectedInverse, a1: FloatArray, a2: FloatArray
) -> FloatArray:
    """a_i' H^{-1} a_i for each row i (a_i: the row's Z Lambda values)."""
    if st.r2:
        h1, h2 = factor.row_inverse_products(a1, a2, inverse)
        return row_dot(a1, h1) + row_dot(a2, h2)
    hinv11 = inverse.diag[0]
    if st.k1 == 1:
        return a1[:, 0] * a1[:, 0] * st.level_values(hinv11[:, 0, 0])
    out = np.zeros(st.n)
    for c in range(st.k1):
        out += a1[:, c] * a1[:, c] * st.level_values(hinv11[:, c, c])
        for d in range(c):
            out += 2.0 * a1[:, c] * a1[:, d] * st.level_values(hinv11[:, c, d])
    return out


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
) -> StructuredFit:
    """fit_structured_vb, also returning the variance factor's parameters and the objective."""
    control = control or StructuredVBControl()
    started = time.perf_counter()
    objective = StructuredObjective(data, prior_fe_sd, prior_log_sd_sd, lkj_eta, control)
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

    def search(y0: FloatArray) -> scipy.optimize.OptimizeResult:
        return scipy.optimize.minimize(
            negative,
            y0,
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
    result: scipy.optimize.OptimizeResult,
    converged: bool,
    grad_norm: float,
    started: float,
) -> FitOutput:
    data = objective.data
    variance = objective.variance
    control = objective.control
    cov = inner.covariance
    assert objective.lambdas is not None
    theta_parts, ranef, ranef_cov = [], [], []
    for t, (block, lam) in enumerate(zip(data.blocks, objective.lambdas, strict=True)):
        _, _, mean_sd = variance.sd_moments(phi, t)
        correlation = variance.expected_correlation(phi, t) if block.k > 1 else np.eye(1)
        sigma = mean_sd[:, None] * correlation * mean_sd[None, :]
        low = np.linalg.cholesky(0.5 * (sigma + sigma.T))
        rows, cols = block.lower_indices()
        theta_parts.append(low[rows, cols])
        u = objective.block_u(inner.means, t)
        ranef.append(u @ lam.T)
        u_cov = cov.inverse.block_covariances(data, t)
        if objective.n_fixed:
            g = objective.block_g(cov, t)
            u_cov = u_cov + np.einsum("jap,pq,jbq->jab", g, cov.schur_inverse, g)
        ranef_cov.append(np.einsum("ab,jbc,dc->jad", lam, u_cov, lam))
    theta = np.concatenate(theta_parts) if theta_parts else np.zeros(0)
    beta = inner.means.beta.copy()
    vcov = 0.5 * (cov.schur_inverse + cov.schur_inverse.T)
    loglik = -0.5 * LaplaceObjective(data).deviance(theta, beta)
    warnings: list[FitWarning] = []
    if not converged:
        warnings.append(
            FitWarning(
                f"variational optimizer did not converge: {result.message} (largest gradient "
                f"entry {grad_norm:.3g}, inner loop converged: {inner.converged})",
                ConvergenceWarning,
            )
        )
    warnings.extend(posterior_warnings(objective, phi, cov, beta))
    summary = OptSummary(
        optimizer=(
            "L-BFGS-B (scipy) over q(variances), q(beta, b) profiled by fixed-point Newton "
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
    variances are then finite only because of the priors."""
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
            found = fixed_effect_separation(data, objective.prior_fe_sd)
            if found is not None:
                out.append(found)
                return out
    variance = objective.variance
    prior_sd = variance.prior_log_sd_sd
    loose = []
    for t in range(len(data.blocks)):
        mean, sd, _ = variance.sd_moments(phi, t)
        if np.any((sd > 0.5 * prior_sd) & (mean > 0.0)):
            loose.append(t)
    grouped = group_separation(data, loose)
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
