"""Laplace approximation to the deviance and its exact gradient in (theta, beta).

    deviance(theta, beta) = -2 sum_i l_i(eta*) + |u*|^2 + log det H(u*) - 2 sum_i log C(m_i, k_i)

with u* the conditional mode (PIRLS), eta* = X beta + Z Lambda u* + offset and
H = Lambda' Z' W Z Lambda + I. This is -2 times lme4's glmer (nAGQ = 1) log-likelihood.

The gradient is exact: the first two terms are stationary in u at u*, so only their partial
derivatives count; log det H depends on (theta, beta) directly and through u*, whose derivative
comes from implicit differentiation of the mode equation (Z Lambda)' l'(eta) = u. All of it
needs one extra solve with H and the entries of H^{-1} on each row's own columns. H carries the
family's observed weights -l''(eta) (glmmTMB's exact Hessian; for the logit link they are the
Fisher weights m mu (1 - mu), lme4's).

A family with a parameter p (the beta-binomial's log phi, at theta's tail: ModelData.family_slice)
adds one gradient entry, with s_i = a_i' H^{-1} a_i and v = H^{-1} (Z Lambda)' r as for beta:

    dDeviance/dp = -2 sum_i dl_i/dp + sum_i (dw_i/dp) s_i + sum_i (Z Lambda v)_i dl_i'/dp.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.diagnostics import (
    BoundaryWarning,
    ConvergenceWarning,
    FitWarning,
)
from glmm_binomial.family import Family
from glmm_binomial.methods.base import Start, checked_control, refuse_arguments
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.methods.maximum_likelihood import LikelihoodMethod
from glmm_binomial.methods.penalty import (
    PenalizedObjective,
    Penalty,
    penalized_start,
    with_penalty,
    with_prior_runaway,
)
from glmm_binomial.model.covariance import (
    CovarianceStructure,
    ScaledCorrelation,
    Unstructured,
    lower_triangle,
)
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.priors import NO_PRIORS, Priors, parse_priors
from glmm_binomial.model.separation import (
    ON_PATH,
    Separation,
    runaway_blocks,
    separation_found,
)
from glmm_binomial.numerics.covariance import (
    LimitCovariance,
    complement_basis,
    kept_rows,
    project_hessian,
    spread_covariance,
)
from glmm_binomial.numerics.factor import LevelOps, SelectedInverse, Structure, row_dot
from glmm_binomial.numerics.optimize import (
    DevianceAndGradient,
    Estimates,
    OptimizerControl,
    optimum_check,
    search_with_basins,
    start_point,
)
from glmm_binomial.numerics.pirls import Mode, PirlsControl, WarmStart, find_mode, scalar_layout

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass
class Counters:
    evaluations: int = 0
    gradients: int = 0
    pirls_iterations: int = 0
    pirls_failures: int = 0

    def record(self, mode: Mode) -> bool:
        """Count one mode search; True when it converged (and may warm-start the next)."""
        self.evaluations += 1
        self.pirls_iterations += mode.iterations
        if not mode.converged:
            self.pirls_failures += 1
        return mode.converged


def sorted_by_first_factor(data: ModelData) -> tuple[ModelData, Structure]:
    """The rows sorted (stably) by the levels of the layout's first grouping factor, and the
    Structure of the sorted rows: its sums are then contiguous segments. The deviance does not
    depend on the order of the rows; data itself is returned when already sorted."""
    structure = Structure(data)
    order = _first_factor_order(structure)
    if order is not None:
        data = data.take(order)
        structure = Structure(data)
    return data, structure


def first_factor_order(data: ModelData) -> IntArray | None:
    """The permutation that sorted_by_first_factor applies to data's rows (sorted row i is
    data's row order[i]), or None when they are already sorted."""
    return _first_factor_order(Structure(data))


def _first_factor_order(structure: Structure) -> IntArray | None:
    g1 = structure.g1
    if not (g1[1:] < g1[:-1]).any():
        return None
    # Codes below 2^16 sort by radix sort, in linear time.
    keys = g1.astype(np.uint16) if structure.n1 <= np.iinfo(np.uint16).max else g1
    return np.argsort(keys, kind="stable")


@dataclass
class LaplaceObjective:
    """Deviance by the Laplace approximation, with PIRLS warm-started from the last mode."""

    data: ModelData
    pirls_control: PirlsControl = field(default_factory=PirlsControl)

    def __post_init__(self) -> None:
        self.data, self.structure = sorted_by_first_factor(self.data)
        st = self.structure
        self.warm = WarmStart.zeros(st.n1, st.k1, st.q2)
        self._at: ModelData = self.data
        self.counters = Counters()
        # One scalar random effect (as (1 | g)) and a family without parameters: the mode
        # change and the gradient in few array operations (the same numbers).
        self.scalar = scalar_layout(st) and not self.data.family.n_parameters
        self.has_exact_hessian = exact_hessian_fits(self.data, st)

    def data_at(self, theta: FloatArray) -> ModelData:
        """The rows with the family at theta's family parameters (self.data itself for a
        family without parameters)."""
        data = self.data
        if not data.family.n_parameters:
            return data
        family = data.family_at(theta)
        if self._at.family != family:
            self._at = dataclasses.replace(data, family=family)
        return self._at

    def reset(self) -> None:
        """Forget the warm start (the next mode search starts from u = 0)."""
        self.warm = self.warm.reset()

    def release(self) -> None:
        """Drop the arrays kept from the last mode (eta, mu, weights, Z Lambda: about 50 bytes
        per row) but keep u as the warm start; the next search then starts from the last mode
        itself instead of its first-order move. For a Dask partition, whose rows must be few
        bytes each between evaluations."""
        self.warm = self.warm.released()

    def mode_change(
        self, mode: Mode, theta: FloatArray, last_theta: FloatArray, d_beta: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """First-order change of the mode at `mode` (found at last_theta) when theta moves to
        `theta` and beta by d_beta (implicit function theorem): H du = dA' l'(eta) -
        A' W (X dbeta + dA u), A = Z Lambda, dA = Z dLambda; one solve with the mode's factor
        (pirls.WarmStart uses it)."""
        data, st = self.data, self.structure
        d_lambdas = data.lambda_change(theta, last_theta)
        if self.scalar:
            return scalar_mode_change(data, st, mode, d_lambdas, d_beta)
        da1, da2 = st.z_lambda(data, d_lambdas)
        deta = data.x @ d_beta + st.times(da1, da2, mode.u1, mode.u2)
        r1, r2 = st.transpose_times(da1, da2, mode.residual)
        s1, s2 = st.transpose_times(mode.a1, mode.a2, mode.weights * deta)
        du1, du2 = mode.factor.solve(r1 - s1, r2 - s2)
        return du1, du2

    def mode(self, theta: FloatArray, beta: FloatArray) -> Mode:
        """Conditional mode at (theta, beta), from the previous mode moved to first order."""
        kept = self.warm.at(theta, beta)
        if kept is not None:
            # The same point again: the mode is at hand.
            return kept
        data = self.data
        eta_fixed = data.x @ beta + data.offset
        u1, u2 = self.warm.start(theta, beta, self.mode_change, self.pirls_control)
        mode = find_mode(
            self.structure,
            self.data_at(theta),
            eta_fixed,
            data.lambdas(theta),
            u1,
            u2,
            self.pirls_control,
        )
        self.counters.record(mode)
        # A failed search would poison the next warm start (WarmStart.after resets it).
        self.warm = self.warm.after(theta, beta, mode)
        return mode

    def deviance_at(self, mode: Mode, general_error: float) -> float:
        """The deviance at a mode, with the general layout's mode error general_error
        (mode_error's; the scalar layout's is the Mode's own)."""
        return (
            mode.penalized_deviance
            + mode.factor.logdet
            + mode.mode_error
            + general_error
            - 2.0 * self.data.log_binomial_constant
        )

    def deviance(self, theta: FloatArray, beta: FloatArray) -> float:
        """Laplace deviance (-2 log-likelihood, binomial constants included)."""
        mode = self.mode(theta, beta)
        error = 0.0
        if mode.last_step is not None:
            *_, t1, t2 = logdet_slope(self.data_at(theta), self.structure, mode)
            error = mode_error(mode, t1, t2)
        return self.deviance_at(mode, error)

    def deviance_and_gradient(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """Deviance and its exact gradient with respect to theta and beta."""
        mode = self.mode(theta, beta)
        self.counters.gradients += 1
        grad_theta, grad_beta, error = self.gradient_and_error(mode, theta)
        return self.deviance_at(mode, error), grad_theta, grad_beta

    def fixed_information(self, theta: FloatArray, beta: FloatArray) -> FloatArray:
        """X' W X - X' W Z Lambda H^{-1} Lambda' Z' W X at the mode: the information on beta
        with u integrated out (lme4's RX' RX), half the deviance Hessian in beta up to the
        change of W with beta."""
        data, st = self.data, self.structure
        mode = self.mode(theta, beta)
        w = mode.weights
        wx = w[:, None] * data.x
        info = data.x.T @ wx
        if self.scalar:
            # H diagonal: the solve is linv^2 per level (the same operations as below).
            a, linv = mode.a1[:, 0], mode.factor.linv[0][:, :, 0]
            for j in range(data.n_fixed):
                s1 = linv * (linv * st.level_sum(a * wx[:, j])[:, None])
                info[:, j] -= wx.T @ (a * st.level_values(s1[:, 0]))
            return 0.5 * (info + info.T)
        for j in range(data.n_fixed):
            t1, t2 = st.transpose_times(mode.a1, mode.a2, wx[:, j])
            s1, s2 = mode.factor.solve(t1, t2)
            info[:, j] -= wx.T @ st.times(mode.a1, mode.a2, s1, s2)
        return 0.5 * (info + info.T)

    def exact_hessian(self, theta: FloatArray, beta: FloatArray) -> FloatArray:
        """The deviance Hessian in (theta, beta) (scalar_hessian, block_hessian); only where
        has_exact_hessian."""
        if not self.has_exact_hessian:
            raise ValueError("no exact Hessian for this layout or family")
        mode = self.mode(theta, beta)
        data, st = self.data, self.structure
        hessian = (scalar_hessian if self.scalar else block_hessian)(data, st, mode)
        covariance = data.blocks[st.first].covariance
        if isinstance(covariance, ScaledCorrelation):
            # block_hessian's is in Lambda's entries (lambda_entries), each a function of
            # theta: by the chain rule, H_theta = J' H_Lambda J + sum_e G_e S_e (J, S the
            # entries' first and second derivatives, G the gradient in the entries), and
            # the cross part with beta J' H_Lambda,beta.
            rows, cols = lambda_entries(covariance)
            jac, second = covariance.entry_derivatives(theta, rows, cols)
            grad_lambda = first_lambda_gradient(data, st, mode)[rows, cols]
            n, k = jac.shape
            chain = np.zeros((n + len(beta), k + len(beta)))
            chain[:n, :k] = jac
            chain[n:, k:] = np.eye(len(beta))
            hessian = chain.T @ hessian @ chain
            hessian[:k, :k] += np.einsum("e,eab->ab", grad_lambda, second)
        return hessian

    def gradient_at(
        self, mode: Mode, theta: FloatArray | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """The exact gradient at a mode; theta (needed for a family with parameters) is where
        the mode was found."""
        grad_theta, grad_beta, _ = self.gradient_and_error(mode, theta)
        return grad_theta, grad_beta

    def gradient_and_error(
        self, mode: Mode, theta: FloatArray | None = None
    ) -> tuple[FloatArray, FloatArray, float]:
        """gradient_at's gradient and the general layout's mode error (mode_error; 0 for the
        scalar layout, whose Mode carries its own), from the same d log det H / du."""
        data, st = self.data, self.structure
        if theta is not None:
            data = self.data_at(theta)
        elif data.family.n_parameters:
            raise ValueError("the gradient of a family with parameters needs theta")
        if self.scalar:
            return *scalar_gradient(data, st, mode), 0.0
        s, h1, h2, r, t1, t2 = logdet_slope(data, st, mode)
        v1, v2 = mode.factor.solve(t1, t2)
        grad_theta, grad_beta = gradient_from_solve(
            data, st, mode, mode.factor.inverse, r, h1, h2, v1, v2
        )
        if data.family.n_parameters:
            grad_theta[data.family_slice] = family_parameter_gradient(data, st, mode, s, v1, v2)
        return grad_theta, grad_beta, mode_error(mode, t1, t2)


def logdet_slope(
    data: ModelData, st: Structure, mode: Mode
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """For the general layout at a mode: the rows' leverages s and h1, h2 (row_leverages', from
    the factor's kept selected inverse), r = w' s (d log det H / d eta_i at fixed Z Lambda, w'
    the weights' derivative in eta) and (Z Lambda)' r split as (n1 x k1, q2), which is
    d log det H / du at fixed Lambda and beta: what the exact gradient and mode_error share."""
    s, h1, h2 = row_leverages(st, mode, mode.factor.inverse)
    slope = data.family.weight_slope(mode.eta, mode.mu, mode.weights, data.successes, data.trials)
    r = slope * s
    t1, t2 = st.transpose_times(mode.a1, mode.a2, r)
    return s, h1, h2, r, t1, t2


def mode_error(mode: Mode, logdet_slope1: FloatArray, logdet_slope2: FloatArray) -> float:
    """Mode.mode_error for the general layout, where find_mode keeps its converged search's
    last step d (not taken) and decrement g'd: -g'd + grad_u(log det H) . d, given
    grad_u(log det H) = (Z Lambda)' (w' s) split as (n1 x k1, q2) (w' the weights' derivative
    in eta, s the rows' leverages a_i' H^{-1} a_i, which the exact gradient forms anyway). The
    mode is found to a decrement of PirlsControl.tol, which holds log det H only to about its
    square root: with this term the deviance is the exact mode's to second order (VerbAgg
    2.8e-7 -> 7e-12 off). 0 without a kept step or where it is not finite."""
    if mode.last_step is None:
        return 0.0
    d1, d2 = mode.last_step
    error = float((logdet_slope1 * d1).sum() + (logdet_slope2 * d2).sum()) - mode.last_decrement
    return error if np.isfinite(error) else 0.0


NEWTON_MAX_VALUES = 16_000
"""For one scalar random effect the outer search is Newton's method on the exact Hessian when
the rows' derivative matrix Q has at most this many values, n (p + 1): there the Hessian costs
about one evaluation and saves two or three. Beyond, its passes over Q (and their fresh arrays)
cost more than the evaluations saved (measured on p = 3: even at 2,000 rows, the quasi-Newton
search 1.16x faster at 20,000)."""

EXACT_HESSIAN_MAX_VALUES = 20_000_000
"""block_hessian's work arrays hold fewer than n p k^2 values (the mode's derivatives on the
rows, n p k, and the rows' parts of dH): beyond this many the finite-difference Hessian is used
instead."""


EXACT_HESSIAN_ENTRY_RATIO = 3.0
"""A structured covariance (ar1, cs: Lambda's whole lower triangle a function of few
parameters) takes the exact Hessian only where block_hessian's dimension, Lambda's entries plus
the fixed effects, is at most this many times the finite differences' (theta plus the fixed
effects): block_hessian costs about that ratio times what one gradient evaluation does per
dimension. Measured (alternating runs): ar1 on 6 occasions (ratio 4.8) 0.12 -> 0.14 s with it,
cs on 6 (2.4) 1.38 -> 1.22 s, ar1 and cs on 3 (2.0, 1.3) about 17% faster, ar1 on 4 (3.0)
even."""


def exact_hessian_fits(data: ModelData, st: Structure) -> bool:
    """Whether the exact Hessian applies: one grouping factor with one unstructured block (a
    Lambda linear in theta) or a structured one (diag, ar1, cs) of two or more columns within
    EXACT_HESSIAN_ENTRY_RATIO, no other random effects, the binomial logit (its weights'
    derivatives), and for k > 1 columns at most EXACT_HESSIAN_MAX_VALUES values of
    block_hessian's work array."""
    family = data.family
    if family.name != "binomial" or family.link != "logit" or family.n_parameters:
        return False
    if st.r2 or len(st.levels) != 1 or len(st.first_blocks) != 1:
        return False
    covariance = data.blocks[st.first].covariance
    # A structured one (k > 1: the block layout) through the chain rule from its entries,
    # where they are not too many more than its parameters.
    structured = isinstance(covariance, ScaledCorrelation) and st.k1 > 1
    if not isinstance(covariance, Unstructured) and not structured:
        return False
    p = len(lambda_entries(covariance)[0]) + data.n_fixed
    if structured and p > EXACT_HESSIAN_ENTRY_RATIO * (data.n_theta + data.n_fixed):
        return False
    return st.k1 == 1 or data.n_obs * p * st.k1 * st.k1 <= EXACT_HESSIAN_MAX_VALUES


def scalar_mode_change(
    data: ModelData,
    st: Structure,
    mode: Mode,
    d_lambdas: list[FloatArray],
    d_beta: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """LaplaceObjective.mode_change for the scalar layout (pirls.scalar_layout): H is
    diagonal, H^{-1} = linv^2 per level; the same operations as the general path."""
    z = st.z1[:, 0]
    d_a = z * float(d_lambdas[st.first][0, 0])
    linv = mode.factor.linv[0][:, :, 0]
    deta = data.x @ d_beta + d_a * st.level_values(mode.u1[:, 0])
    r1 = st.level_sum(d_a * mode.residual)[:, None]
    s1 = st.level_sum(mode.a1[:, 0] * (mode.weights * deta))[:, None]
    return linv * (linv * (r1 - s1)), np.zeros(0)


def scalar_gradient(data: ModelData, st: Structure, mode: Mode) -> tuple[FloatArray, FloatArray]:
    """LaplaceObjective.gradient_at for the scalar layout (pirls.scalar_layout) and a family
    without parameters: logdet_slope and gradient_from_solve with H diagonal (its inverse
    linv^2 per level), in the same operations."""
    a, z = mode.a1[:, 0], st.z1[:, 0]
    w, rho = mode.weights, mode.residual
    linv = mode.factor.linv[0]
    hinv = linv * linv  # (n1, 1, 1): the selected inverse of a diagonal H
    s = a * a * st.level_values(hinv[:, 0, 0])
    r = data.family.weight_slope(mode.eta, mode.mu, w, data.successes, data.trials) * s
    v1 = linv[:, :, 0] * (linv[:, :, 0] * st.level_sum(a * r)[:, None])
    e = r - 2.0 * rho - w * (a * st.level_values(v1[:, 0]))
    grad_beta = data.x.T @ e
    g_first = st.level_sum(z * e)[None, :] @ mode.u1
    g_first += st.level_sum(z * rho)[None, :] @ v1
    lam = mode.lambdas[st.first]
    g_first += 2.0 * np.einsum("jrd,de,jec->rc", mode.factor.cross, lam, hinv)
    grad_theta = np.zeros(data.n_theta)
    block = data.blocks[st.first]
    grad_theta[data.theta_slices()[st.first]] = block.covariance.theta_gradient(lam, g_first)
    return grad_theta, grad_beta


def scalar_hessian(data: ModelData, st: Structure, mode: Mode) -> FloatArray:
    """The exact Hessian of the Laplace deviance in (theta, beta) for the scalar layout
    (pirls.scalar_layout: eta_i = x_i'beta + theta z_i u_j(i)) and the binomial logit, at a
    mode (the mode found to its tolerance; about 2 gradients' work where finite differences
    take n_theta + p).

    D = P(u(p), p) + sum_j log H_j with P the penalized deviance, H_j = 1 + sum a_i^2 w_i
    (a_i = theta z_i) and u(p) the mode (u_j = sum a_i r_i). With Q_i = d eta_i / dp at fixed u
    (z_i u_j, x_i), F_p the mode equation's derivative (sum a_i w_i Q_i - e_theta sum z_i r_i
    per level), u_p = -F_p / H and E_i = Q_i + a_i u_p,j (the total derivative of eta_i):
    the penalized part's Hessian is 2 (Q'WQ - F_p' H^{-1} F_p) (the envelope theorem); the
    log-determinant's is sum_j (D^2 H_j / H_j - DH_j DH_j' / H_j^2), with DH_j = sum 2 a_i w_i
    z_i e_theta + a_i^2 w'_i E_i and D^2 H_j from w', w'' (the weight's derivatives in eta)
    and the mode's second derivative u_pp, which the mode equation gives level by level.

    Every term is a sum over levels or rows: a large fit takes it in runs of whole levels
    (Structure.level_chunks, SCALAR_HESSIAN_CHUNK_ROWS rows each), whose work arrays stay
    small."""
    z = st.z1[:, 0]
    a = mode.a1[:, 0]  # theta z_i
    u = mode.u1[:, 0]
    hinv = mode.factor.block_inverse[:, 0, 0]  # 1 / H_j, from the mode's factor
    rows = (z, a, mode.mu, mode.weights, mode.residual, data.x)
    return in_level_runs(st, SCALAR_HESSIAN_CHUNK_ROWS, scalar_hessian_part, rows, (u, hinv))


def in_level_runs(
    st: Structure,
    max_rows: int,
    part: Callable[[tuple[FloatArray, ...], tuple[FloatArray, ...], LevelOps], FloatArray],
    on_rows: tuple[FloatArray, ...],
    on_levels: tuple[FloatArray, ...],
) -> FloatArray:
    """part(on_rows, on_levels, ops), a sum over rows and levels, summed over runs of whole
    levels of about max_rows rows (Structure.level_chunks: the work arrays of a large fit then
    stay small) or over all of them at once, and symmetrized."""
    chunks = st.level_chunks(max_rows) if st.n > max_rows else None
    if chunks is None or len(chunks) == 1:
        total = part(on_rows, on_levels, st.level_ops())
    else:
        parts = (
            part(
                tuple(v[chunk.rows] for v in on_rows),
                tuple(v[chunk.levels] for v in on_levels),
                chunk.ops(),
            )
            for chunk in chunks
        )
        total = next(parts)
        for value in parts:
            total = total + value
    return 0.5 * (total + total.T)


SCALAR_HESSIAN_CHUNK_ROWS = 8192
"""scalar_hessian works through the rows in runs of whole levels of about this many rows (its
work arrays, a few n x (p + 1), then fit in the caches and are not fresh pages each time:
2x faster at 100,000 rows)."""


def scalar_hessian_part(
    rows: tuple[FloatArray, ...], levels: tuple[FloatArray, ...], ops: LevelOps
) -> FloatArray:
    """scalar_hessian's sum (not yet symmetrized) over some whole levels: rows = (z, a, mu, w,
    r, x) of their rows, levels = (u, hinv = 1 / H_j) of the levels, ops their level
    operations."""
    z, a, mu, w, r, x = rows
    u, hinv = levels
    level_sum, level_values = ops.level_sum, ops.level_values
    w1 = w * (1.0 - 2.0 * mu)
    w2 = w * (1.0 - 6.0 * mu * (1.0 - mu))
    u_rows = level_values(u)
    # Column-major, as block_hessian_part's: faster level sums down its rows.
    q = np.empty((len(z), 1 + x.shape[1]), order="F")
    np.multiply(z, u_rows, out=q[:, 0])
    q[:, 1:] = x
    a2w1 = a * a * w1
    c1 = level_sum(a2w1 * z)
    c3 = level_sum(a2w1 * a)
    cwz = level_sum(a * w * z)
    hinv_rows = level_values(hinv)
    g5 = level_values(c3 * hinv * hinv)
    # Row weights of the terms s_i E_i E_i' (from D^2 H_j / H_j) and of e_theta v' + v e_theta'.
    s = hinv_rows * a * a * w2 - g5 * a * w1
    v_rows = hinv_rows * 2.0 * a * w1 * z - g5 * w * z
    # E_i = Q_i + a_i u_p,j(i) is not formed: every product with it is one with Q plus a level
    # sum times u_p: level sums of Q with weights a w (F_p), s a (sum_i s_i a_i Q_i u_p,j') and
    # a^2 w' (DH_j).
    f_p = ops.level_sums((a * w)[:, None] * q)
    sq = ops.level_sums((s * a)[:, None] * q)
    d_h = ops.level_sums(a2w1[:, None] * q)
    f_p[:, 0] -= level_sum(z * r)
    u_p = -f_p * hinv[:, None]
    cross = sq.T @ u_p
    # 2 Q'WQ (the penalized part's) and E'SE (the log-determinant's) in one product.
    hessian = q.T @ ((2.0 * w + s)[:, None] * q)
    hessian += cross + cross.T + u_p.T @ (level_sum(s * a * a)[:, None] * u_p)
    hessian -= 2.0 * (f_p.T @ (f_p * hinv[:, None]))
    v = q.T @ v_rows + u_p.T @ (level_sum(a * v_rows) + hinv * c1 - c3 * cwz * hinv * hinv)
    hessian[0, :] += v
    hessian[:, 0] += v
    hessian[0, 0] += float((hinv_rows * 2.0 * w * z * z).sum())
    d_h += c3[:, None] * u_p  # sum_i a_i^2 w'_i E_i per level
    d_h[:, 0] += 2.0 * cwz
    hessian -= d_h.T @ (d_h * (hinv * hinv)[:, None])
    return hessian


def block_hessian(data: ModelData, st: Structure, mode: Mode) -> FloatArray:
    """scalar_hessian for one grouping factor with k random-effect columns and an unstructured
    Lambda (eta_i = x_i'beta + z_i' Lambda u_j(i); A_i = Lambda' z_i, H_j = I + sum w_i A_i A_i'),
    the binomial logit: the penalized part 2 (Q'WQ - sum_j F_p,j' H_j^{-1} F_p,j), the
    log-determinant's sum_j tr(H_j^{-1} D_s D_t H_j) - tr(H_j^{-1} D_s H_j H_j^{-1} D_t H_j),
    with B_i,t = dA_i/dtheta_t (column kappa_t of Lambda's entry (rho_t, kappa_t): the row's
    z_i,rho_t there), the mode's derivatives u_p = -H^{-1} F_p and, contracted as the trace
    needs it, its second derivative from the mode equation. H_j^{-1} and S_j come from the mode's
    factor. Memory about 2 n p k values (the mode's derivatives on the rows) at a time: a large
    fit takes it in runs of whole levels (Structure.level_chunks, BLOCK_HESSIAN_CHUNK_ROWS rows
    each), as scalar_hessian does; exact_hessian_fits says when the whole is small enough."""
    rows = (st.z1, mode.a1, mode.mu, mode.weights, mode.residual, data.x)
    factor = mode.factor
    levels = (mode.u1, factor.linv[0], factor.block_inverse, factor.cross)
    indices = lambda_entries(data.blocks[st.first].covariance)

    def part(
        on_rows: tuple[FloatArray, ...], on_levels: tuple[FloatArray, ...], ops: LevelOps
    ) -> FloatArray:
        return block_hessian_part(on_rows, on_levels, ops, indices)

    return in_level_runs(st, BLOCK_HESSIAN_CHUNK_ROWS, part, rows, levels)


def lambda_entries(covariance: CovarianceStructure) -> tuple[IntArray, IntArray]:
    """Lambda's (row, column) of the entries block_hessian differentiates in: the lower
    triangle (unstructured: theta's own; ar1, cs: functions of theta, which
    LaplaceObjective.exact_hessian's chain rule turns to), or for diag only the diagonal (the
    rest is zero)."""
    if isinstance(covariance, ScaledCorrelation) and not covariance.n_correlation:
        k = np.arange(covariance.k)
        return k, k.copy()
    return lower_triangle(covariance.k)


BLOCK_HESSIAN_CHUNK_ROWS = 8192
"""block_hessian works through the rows in runs of whole levels of about this many rows (its
work arrays, a few n x p and n x p x k, then stay in the caches)."""


def block_hessian_part(
    on_rows: tuple[FloatArray, ...],
    on_levels: tuple[FloatArray, ...],
    ops: LevelOps,
    indices: tuple[NDArray[np.intp], NDArray[np.intp]],
) -> FloatArray:
    """block_hessian's sum (not yet symmetrized) over some whole levels: on_rows = (z, A, mu,
    w, r, x) of their rows, on_levels = (u, L^{-1}, H^{-1}, S) of the levels, ops their level
    operations, indices = Lambda's (row, column) of each theta entry."""
    z, a, mu, w, r, x = on_rows
    u1, linv, hinv, zz = on_levels
    rows, cols = indices
    n_theta = len(rows)
    n, k = a.shape
    p = n_theta + x.shape[1]
    w1 = w * (1.0 - 2.0 * mu)
    w2 = w * (1.0 - 6.0 * mu * (1.0 - mu))
    lv, ls = ops.level_values, ops.level_sums
    u_rows = lv(u1)
    zr = z[:, rows]  # z_i,rho_t per row and theta entry
    # Column-major (n, p) arrays: their level sums (reduceat down the rows) run 2-3x faster.
    q = np.empty((n, p), order="F")
    q[:, :n_theta] = zr * u_rows[:, cols]
    q[:, n_theta:] = x
    n1 = u1.shape[0]
    # H_j^{-1} = L_j^{-T} L_j^{-1} from the mode's factor (H_j = L_j L_j'), and S_j = sum w z z'
    # (the factor's cross products: for the logit the Newton weights are the observed ones).
    f_p = np.empty((n1, k, p))
    for c in range(k):
        f_p[:, c, :] = ls((w * a[:, c])[:, None] * q)
    rz = ls(r[:, None] * zr)
    for t in range(n_theta):
        f_p[:, cols[t], t] -= rz[:, t]
    u_p = -hinv @ f_p
    u_p_rows = lv(u_p)
    e = q.copy(order="F")
    for c in range(k):
        e += a[:, c, None] * u_p_rows[:, c, :]
    penalized = 2.0 * (q.T @ (w[:, None] * q) + np.einsum("jkp,jkq->pq", f_p, u_p))

    hinv_rows = lv(hinv)
    hv = np.einsum("ikl,il->ik", hinv_rows, a)  # H^{-1} A_i
    m = np.einsum("ik,ik->i", a, hv)
    c_sum = ls((w1 * m)[:, None] * a)
    g = np.einsum("jkl,jl->jk", hinv, c_sum)
    g_rows = lv(g)
    ga = np.einsum("ik,ik->i", g_rows, a)
    second = e.T @ ((w2 * m - w1 * ga)[:, None] * e)
    v = 2.0 * w1[:, None] * hv - w[:, None] * g_rows
    cmat = np.zeros((n, p))
    cmat[:, :n_theta] = zr * v[:, cols]
    second += e.T @ cmat + cmat.T @ e
    y = w1 * m - w * ga
    yz = ls(y[:, None] * zr)
    wm = np.zeros((p, p))
    wm[:n_theta, :] = np.einsum("jt,jtp->tp", yz, u_p[:, cols, :])
    second += wm + wm.T
    t5 = 2.0 * np.einsum("jst,jst->st", zz[:, rows][:, :, rows], hinv[:, cols][:, :, cols])
    second[:n_theta, :n_theta] += t5
    # D_s H_j = sum_i w1_i E_is A_i A_i' + w_i (B_is A_i' + A_i B_is'), symmetric: its entries
    # (c, d), c <= d, as level sums of (n, p) arrays, then B's part (rows' z_i,rho_t A_i).
    dh = np.empty((n1, p, k, k))
    w1e = w1[:, None] * e
    for c in range(k):
        for d in range(c + 1):
            dh[:, :, c, d] = ls((a[:, c] * a[:, d])[:, None] * w1e)
            dh[:, :, d, c] = dh[:, :, c, d]
    # sum_i w_i z_i,rho_t A_i per level: over Lambda's k rows, then taken per theta entry (the
    # lower triangle repeats each row up to k times).
    wz = w[:, None] * z
    wza = ls((wz[:, :, None] * a[:, None, :]).reshape(n, k * k)).reshape(n1, k, k)[:, rows]
    for t in range(n_theta):
        dh[:, t, cols[t], :] += wza[:, t]
        dh[:, t, :, cols[t]] += wza[:, t]
    # sum_j tr(H^{-1} D_s H H^{-1} D_t H) = <G_s, G_t> summed over levels, G = L^{-1} D H L^{-T}
    # (symmetric): one matrix product.
    # (numpy's batched matmul of many 2 x 2 or 3 x 3 matrices is about 3x slower than einsum
    # over the k x k axes laid out first, each a contiguous (n1, p) plane.)
    lower = np.ascontiguousarray(linv.transpose(1, 2, 0))  # (k, k, n1)
    planes = np.ascontiguousarray(dh.transpose(2, 3, 0, 1))  # (k, k, n1, p)
    gmat = np.einsum("acjs,dcj->adjs", np.einsum("abj,bcjs->acjs", lower, planes), lower)
    flat = gmat.transpose(3, 0, 1, 2).reshape(p, k * k * n1)
    second -= flat @ flat.T
    return penalized + second


def family_parameter_gradient(
    data: ModelData, st: Structure, mode: Mode, s: FloatArray, v1: FloatArray, v2: FloatArray
) -> FloatArray:
    """dDeviance/dp for the family's parameter p (module docstring), given the rows'
    s_i = a_i' H^{-1} a_i and v = H^{-1} (Z Lambda)' r."""
    loglik_p, residual_p, weights_p = data.family.parameter_rows(
        mode.eta, data.successes, data.trials
    )
    av = st.times(mode.a1, mode.a2, v1, v2)
    value = -2.0 * float(loglik_p.sum()) + float(weights_p @ s) + float(residual_p @ av)
    return np.array([value])


def row_leverages(
    st: Structure, mode: Mode, inverse: SelectedInverse
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """s_i = a_i' H^{-1} a_i for every row, and the rows' h_i = H^{-1} a_i on their own
    columns (h1, h2; both empty without a rest)."""
    a1, a2 = mode.a1, mode.a2
    hinv11 = inverse.diag[0]
    h1, h2 = np.zeros((0, st.k1)), np.zeros((0, st.r2))
    if st.r2:
        h1, h2 = mode.factor.row_inverse_products(a1, a2, inverse)
        s = row_dot(a1, h1) + row_dot(a2, h2)
    elif st.k1 == 1:
        s = a1[:, 0] * a1[:, 0] * st.level_values(hinv11[:, 0, 0])
    else:
        # sum over c, d of a_ic a_id H^{-1}_j[c, d], per-level entries spread to the rows.
        s = np.zeros(st.n)
        for c in range(st.k1):
            s += a1[:, c] * a1[:, c] * st.level_values(hinv11[:, c, c])
            for d in range(c):
                s += 2.0 * a1[:, c] * a1[:, d] * st.level_values(hinv11[:, c, d])
    # s_i = a_i' H^{-1} a_i; d log det H / d eta_i at fixed Z Lambda is (dw_i / deta_i) s_i.
    return s, h1, h2


def gradient_from_solve(
    data: ModelData,
    st: Structure,
    mode: Mode,
    inverse: SelectedInverse,
    r: FloatArray,
    h1: FloatArray,
    h2: FloatArray,
    v1: FloatArray,
    v2: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Gradient of the Laplace deviance in (theta, beta) from logdet_slope's r = w' s and the
    rows' h1, h2 (row_leverages), and v = H^{-1} (Z Lambda)' r split as (v1, v2): sums over
    the rows of data."""
    a1, a2, w, rho = mode.a1, mode.a2, mode.weights, mode.residual
    e = r - 2.0 * rho - w * st.times(a1, a2, v1, v2)
    grad_beta = data.x.T @ e
    grad_theta = np.zeros(data.n_theta)
    slices = data.theta_slices()
    g_first = first_part_gradient(st, mode, inverse, e, h1, v1)
    for t, cols in zip(st.first_blocks, st.first_columns, strict=True):
        structure = data.blocks[t].covariance
        grad_theta[slices[t]] = structure.theta_gradient(mode.lambdas[t], g_first[cols, cols])
    position = 0
    for t, offset in zip(st.rest, st.rest_offsets, strict=True):
        b = data.blocks[t]
        idx = offset + b.codes[:, None] * b.k + np.arange(b.k)[None, :]
        h_rows = h2[:, position : position + b.k]
        position += b.k
        q = e[:, None] * mode.u2[idx] + rho[:, None] * v2[idx] + 2.0 * w[:, None] * h_rows
        grad_theta[slices[t]] = b.covariance.theta_gradient(mode.lambdas[t], b.z.T @ q)
    return grad_theta, grad_beta


def first_part_gradient(
    st: Structure,
    mode: Mode,
    inverse: SelectedInverse,
    e: FloatArray,
    h1: FloatArray,
    v1: FloatArray,
) -> FloatArray:
    """The deviance's gradient in the first (block-diagonal) part's Lambda entries (k1 x k1;
    gradient_from_solve's e, h1 and v1). Entry [r, c]: sum_i Z[i, r] Q[i, c] with
    Q[i, c] = e_i u[g(i), c] + rho_i v[g(i), c] + 2 w_i h[i, c], h_i = H^{-1} a_i: the first
    two terms are group sums times u and v, and without a rest the third is
    2 sum_j S_j Lambda H_j^{-1}, S_j = sum_i w_i z_i z_i'."""
    z1, w, rho = st.z1, mode.weights, mode.residual
    g_first = st.level_sums(z1 * e[:, None]).T @ mode.u1
    g_first += st.level_sums(z1 * rho[:, None]).T @ v1
    if st.r2:
        g_first += 2.0 * z1.T @ (w[:, None] * h1)
    else:
        lam1 = st.first_lambda(mode.lambdas)
        g_first += 2.0 * np.einsum("jrd,de,jec->rc", mode.factor.cross, lam1, inverse.diag[0])
    return np.asarray(g_first, dtype=np.float64)


def first_lambda_gradient(data: ModelData, st: Structure, mode: Mode) -> FloatArray:
    """The deviance's gradient in the first part's Lambda entries at a mode of the general
    layout (first_part_gradient, from the same solve as the exact gradient's)."""
    _, h1, h2, r, t1, t2 = logdet_slope(data, st, mode)
    v1, v2 = mode.factor.solve(t1, t2)
    e = r - 2.0 * mode.residual - mode.weights * st.times(mode.a1, mode.a2, v1, v2)
    return first_part_gradient(st, mode, mode.factor.inverse, e, h1, v1)


def conditional_effects(
    objective: LaplaceObjective, mode: Mode, theta: FloatArray
) -> tuple[tuple[FloatArray, ...], tuple[FloatArray, ...]]:
    """Conditional modes b_t = Lambda_t u_t (n_levels x k) and their conditional covariances
    Lambda_t H^{-1}_jj Lambda_t' (n_levels x k x k), per block in ModelData order."""
    data, st = objective.data, objective.structure
    return block_effects(data, st, mode, theta, mode.factor.inverse)


def block_effects(
    data: ModelData, st: Structure, mode: Mode, theta: FloatArray, inverse: SelectedInverse
) -> tuple[tuple[FloatArray, ...], tuple[FloatArray, ...]]:
    """conditional_effects with the selected inverse of H at hand."""
    lambdas = data.lambdas(theta)
    modes: list[FloatArray] = [np.empty(0)] * len(data.blocks)
    covs: list[FloatArray] = [np.empty(0)] * len(data.blocks)
    for t, cols in zip(st.first_blocks, st.first_columns, strict=True):
        modes[t] = mode.u1[:, cols] @ lambdas[t].T
    for t, offset in zip(st.rest, st.rest_offsets, strict=True):
        b = data.blocks[t]
        idx = offset + np.arange(b.n_levels)[:, None] * b.k + np.arange(b.k)[None, :]
        modes[t] = mode.u2[idx] @ lambdas[t].T
    for t in range(len(data.blocks)):
        lam = lambdas[t]
        covs[t] = np.einsum("ab,jbc,dc->jad", lam, inverse.block_covariances(data, t), lam)
    return tuple(modes), tuple(covs)


LOGLIK_LABEL = "Laplace approximation"


def fit_laplace(
    data: ModelData,
    control: OptimizerControl | None = None,
    pirls_control: PirlsControl | None = None,
    start: Start | None = None,
    penalty: Penalty | None = None,
) -> FitOutput:
    """Maximum-likelihood fit by the Laplace approximation (lme4's glmer, nAGQ = 1) on data's
    columns as they are; `start`: (theta, beta) to start from (default: lme4's start). With a
    penalty (methods.penalty: priors bound to these columns), the posterior mode: the Laplace
    deviance plus the prior deviance is minimized (blme's bglmer)."""
    control = control or OptimizerControl()
    objective = LaplaceObjective(data, pirls_control or PirlsControl())
    target: LaplaceObjective | PenalizedObjective = objective
    begin = start_point(data, control, *(start or (None, None)))
    if penalty is not None:
        target = PenalizedObjective(objective, penalty)
        if start is None:
            begin = penalized_start(data, control, penalty, begin)

    estimates = search_with_basins(
        data,
        target.deviance_and_gradient,
        control,
        objective.counters,
        "laplace" if penalty is None else "laplace + prior deviance",
        begin,
        objective.reset,
        other_starts=start is None,
        fixed_information=target.fixed_information,
        # Exact for the likelihood itself (a prior adds its own curvature).
        exact_hessian=objective.exact_hessian
        if penalty is None and objective.has_exact_hessian
        else None,
        # One scalar random effect, few rows: the exact Hessian costs about an evaluation.
        newton_from_start=objective.scalar and data.n_obs * (data.n_fixed + 1) <= NEWTON_MAX_VALUES,
    )
    under_prior = None if penalty is None else penalty.covered()
    output = finish_fit(
        data,
        objective,
        estimates,
        control,
        "laplace",
        LOGLIK_LABEL,
        under_prior=under_prior,
        deviance_and_gradient=target.deviance_and_gradient,
    )
    output = with_prior_runaway_in_memory(
        output, data, penalty, target.deviance_and_gradient, control
    )
    return with_penalty(output, penalty)


def with_prior_runaway_in_memory(
    output: FitOutput,
    data: ModelData,
    penalty: Penalty | None,
    deviance_and_gradient: DevianceAndGradient,
    control: OptimizerControl,
) -> FitOutput:
    """penalty.with_prior_runaway with the in-memory screen of the rows' random-effect SDs
    (separation.runaway_blocks at the estimates; Laplace and AGQ fits)."""
    return with_prior_runaway(
        output,
        penalty,
        lambda: runaway_blocks(data, output.theta, control.separation_screen),
        deviance_and_gradient,
        control,
    )


@dataclass(frozen=True)
class Laplace(LikelihoodMethod):
    """Maximum likelihood with the deviance by the Laplace approximation (glmer, nAGQ = 1).

    control: the outer optimizer's tolerances; pirls_control: the mode search's. priors
    (model.priors: a Priors object, or what parse_priors reads, e.g. {"fixef": "t(df = 7,
    scale = 2.5)", "cov": "wishart"}): fit the posterior mode under those priors (blme's
    bglmer) instead of the maximum-likelihood estimate."""

    control: OptimizerControl = field(default_factory=OptimizerControl)
    pirls_control: PirlsControl = field(default_factory=PirlsControl)
    priors: Priors = NO_PRIORS

    name: ClassVar[str] = "laplace"

    def __post_init__(self) -> None:
        object.__setattr__(self, "priors", parse_priors(self.priors))

    @classmethod
    def from_arguments(
        cls,
        *,
        control: Any = None,
        pirls_control: Any = None,
        n_agq: int | None = None,
        priors: Any = None,
        **others: Any,
    ) -> Laplace:
        if n_agq not in (None, 1):
            raise ValueError("n_agq applies only to method='agq'")
        refuse_arguments(cls.name, **others)
        return cls(
            checked_control(cls.name, control, OptimizerControl),
            checked_control(cls.name, pirls_control, PirlsControl, "pirls_control"),
            parse_priors(priors),
        )

    @property
    def title(self) -> str:
        if not self.priors.empty:
            return "maximum a posteriori (penalized likelihood, Laplace Approximation)"
        return "maximum likelihood (Laplace Approximation)"

    @property
    def tolerances(self) -> dict[str, float | str]:
        return self.control.tolerances()

    @property
    def centres_random(self) -> bool:
        return True

    def likelihood_objective(self, model: ModelData) -> Any:
        return LaplaceObjective(model, self.pirls_control)

    def fit_columns(
        self, model: ModelData, start: Start | None = None, penalty: Penalty | None = None
    ) -> FitOutput:
        return fit_laplace(model, self.control, self.pirls_control, start, penalty)


def finish_fit(
    data: ModelData,
    objective: LaplaceObjective,
    estimates: Estimates,
    control: OptimizerControl,
    method: str,
    loglik_label: str,
    n_agq: int = 1,
    under_prior: NDArray[np.bool_] | None = None,
    deviance_and_gradient: DevianceAndGradient | None = None,
) -> FitOutput:
    """Covariances, boundary check and conditional modes at the optimum of a deviance.
    under_prior: the fixed effects with a proper prior (a penalized fit), whose posterior mode
    is finite whatever the data: they are not screened for separation. deviance_and_gradient:
    the searched deviance (with the priors' where they are), for verified_off_path."""
    theta, beta = estimates.theta, estimates.beta
    screened = beta if under_prior is None else np.where(under_prior, 0.0, beta)

    def separation_at(
        eta: FloatArray | None,
    ) -> tuple[tuple[FitWarning, ...], Separation | tuple[int, ...]]:
        return separation_found(
            data,
            screened,
            theta,
            control.separation_screen,
            control.column_runaway_screen,
            control.fixed_separation_screen,
            eta,
        )

    try:
        mode = mode_at_end(objective, theta, beta)
    except np.linalg.LinAlgError:
        # The search ran off (its deviance not finite there, so not converged) to where even
        # the conditional modes' factor fails: no estimates to report. Where the linear
        # programs find the separation that drove it there, the message says so (the same
        # data with successes and failures swapped can end on a finite point of the same
        # path and report it: metamorphic.py's cs:5226).
        found, _ = separation_at(None)
        raise run_off_error(data, theta, beta, str(found[0]) if found else None) from None
    ranef, ranef_cov = conditional_effects(objective, mode, theta)
    # A coefficient under a proper prior has a finite mode: with one, the fixed part's screens
    # alone (they look at the unpenalized coefficients only).
    separation = separation_at(mode.eta if under_prior is None or not under_prior.any() else None)
    if deviance_and_gradient is not None and isinstance(separation[1], Separation):
        estimates = verified_off_path(
            data, estimates, separation[1], deviance_and_gradient, control
        )
    output = fit_output(
        data, estimates, control, method, loglik_label, ranef, ranef_cov, separation, n_agq
    )
    return with_link_bound(output, data.family, rows_at_link_bound(data.family, mode.eta))


def run_off_error(
    data: ModelData, theta: FloatArray, beta: FloatArray, separation: str | None
) -> ValueError:
    """The refusal of a fit whose search ran off to (theta, beta), where the conditional modes
    cannot be computed: how far it ran, and the separation the linear programs found there
    (separation_found's message; None: not found or not checked, said as possible)."""
    sds = np.concatenate([np.sqrt(np.diag(lam @ lam.T)) for lam in data.lambdas(theta)])
    why = (
        separation.replace(ON_PATH, "")
        if separation is not None
        else "the response may be (quasi-)separated by the fixed effects or by a grouping "
        "factor, or the model is too rich for the data"
    )
    return ValueError(
        "the fit failed: the search ran off to random-effect SDs of up to "
        f"{float(np.max(sds, initial=0.0)):.3g} and fixed effects "
        f"of up to {float(np.max(np.abs(beta), initial=0.0)):.3g}, where the conditional "
        f"modes cannot be computed; {why}"
    )


class ModeSearch(Protocol):
    """An objective's conditional-mode search with a warm start (LaplaceObjective,
    agq.AgqObjective)."""

    def mode(self, theta: FloatArray, beta: FloatArray) -> Mode: ...

    def reset(self) -> None: ...


def mode_at_end(objective: ModeSearch, theta: FloatArray, beta: FloatArray) -> Mode:
    """objective.mode at a search's end (theta, beta): from its warm start or, where that
    fails, from u = 0 (the warm start may be another search's end: better_of_basins);
    LinAlgError when both fail. At an end on the log link's bound the mode search's
    infeasible steps overflow, as in the search's own evaluations (minimize_deviance's fun):
    without numpy's warnings."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            return objective.mode(theta, beta)
        except np.linalg.LinAlgError:
            objective.reset()
            return objective.mode(theta, beta)


OFF_PATH = "optimum verified on the directions off the diverging path"
"""verified_off_path's message (the search's own check follows it)."""


def verified_off_path(
    data: ModelData,
    estimates: Estimates,
    found: Separation,
    deviance_and_gradient: DevianceAndGradient,
    control: OptimizerControl,
) -> Estimates:
    """estimates with the search's end verified (its summary converged) where the fit is
    separated by the fixed effects alone and the search's own check failed, when its end
    passes optimum_check with the diverging directions projected out of the gradient and the
    Hessian (found.flat_directions; variances at the boundary held, as the search holds them);
    else estimates as they are.

    Along the diverging path the deviance is flat to rounding, and in the search's whitened
    coordinates (scaled by the GLM's information, nearly zero along that path) its Hessian
    there can come out indefinite (-0.25, tests/_simulate.one_level_all_failures with
    numpy 2.4): a search that reached the limit of every other direction then said it had
    not converged, and the likelihood-ratio tests (drop1, anova) had no supremum to compare.
    Only those directions matter for the limit (FitOutput.limit_verified)."""
    summary = estimates.summary
    if summary.converged or not found.by_fixed_effects_alone or estimates.hessian is None:
        return estimates
    theta, beta = estimates.theta, estimates.beta
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            value, g_theta, g_beta = deviance_and_gradient(theta, beta)
    except np.linalg.LinAlgError:
        return estimates
    n_theta = len(theta)
    basis = complement_basis(found.flat_directions(len(beta)))
    grad = np.concatenate([g_theta, basis.T @ g_beta])
    hessian = project_hessian(estimates.hessian, n_theta, basis)
    free = np.ones(len(grad), dtype=bool)
    free[:n_theta] = ~data.theta_at_boundary(theta, control.boundary_tol)
    failure = optimum_check(value, grad[free], hessian[np.ix_(free, free)], control)
    if failure:
        return estimates
    message = f"{OFF_PATH} (the search's own check: {summary.message})"
    return dataclasses.replace(
        estimates, summary=dataclasses.replace(summary, converged=True, message=message)
    )


LINK_BOUND_TOL = 1e-6
"""A fitted eta (with the conditional modes) within this of a link's bound (the log link's
eta <= 0, mu <= 1) counts as on it."""


def rows_at_link_bound(family: Family, eta: FloatArray) -> int:
    """How many rows' fitted eta lie within LINK_BOUND_TOL of the link's bound (0 for a link
    without one)."""
    upper = family.eta_upper
    if not np.isfinite(upper):
        return 0
    return int(np.count_nonzero(eta >= upper - LINK_BOUND_TOL))


def with_link_bound(output: FitOutput, family: Family, reached: int) -> FitOutput:
    """output, not converged and with a ConvergenceWarning, when `reached` rows' fitted linear
    predictor lies at the link's bound (rows_at_link_bound; the log link's mu = e^eta <= 1):
    the maximum then lies on the boundary of the parameter space, where the mode search cannot
    converge and the Laplace approximation and the standard errors do not hold."""
    if not reached:
        return output
    bound = FitWarning(
        f"the {family.link} link's constraint mu = exp(eta) <= 1 is active: the fitted "
        f"linear predictor reaches {family.eta_upper:g} at {reached} row(s), so the estimates "
        "lie on the boundary of the parameter space (no converged mode; the Laplace "
        "approximation and the standard errors do not hold there); consider the cloglog or "
        "logit link",
        ConvergenceWarning,
    )
    return dataclasses.replace(
        output, converged=False, warnings=(*output.warnings, bound), link_bound_rows=reached
    )


NOT_LOG_CONCAVE_HINT = (
    "; the {link} likelihood is not log-concave, and the Laplace approximation with the "
    "observed curvature rises without bound where that curvature nearly vanishes at the "
    "conditional modes: method='agq' (one grouping factor, or nested ones) integrates "
    "without it"
)
"""Added to a Laplace fit's convergence warning for a family that is not log-concave
(fuzz_separation's cauchit fits: the search ran to such a point, where AGQ finds an interior
optimum)."""


def fit_output(
    data: ModelData,
    estimates: Estimates,
    control: OptimizerControl,
    method: str,
    loglik_label: str,
    ranef: tuple[FloatArray, ...],
    ranef_cov: tuple[FloatArray, ...],
    separation: tuple[tuple[FitWarning, ...], Separation | tuple[int, ...]],
    n_agq: int = 1,
) -> FitOutput:
    """FitOutput from the optimum: covariances from the Hessian, the boundary check and the
    warnings. data is used only for its structure (names, theta layout); separation is
    separation.separation_found's (warnings, Separation), or (warnings, the fixed-effect
    columns with no finite estimate) where the exact check was not run (a Dask fit too large
    to gather), recorded on the output as found."""
    theta, beta = estimates.theta, estimates.beta
    n_theta = data.n_theta
    # A variance at zero, or a structured covariance's correlation at the end of its range.
    at_boundary = data.theta_at_boundary(theta, control.boundary_tol)
    at_boundary |= data.theta_saturated(theta, control.boundary_tol)
    # A family parameter at its limit is on the boundary too (no standard error), but the
    # random effects are not singular for it.
    at_limit = data.family_at_limit(theta)
    singular = bool(at_boundary[: data.family_slice.start].any())
    warnings: list[FitWarning] = []
    converged = estimates.summary.converged
    separated, found = separation
    if not isinstance(found, Separation):
        found = Separation(False, tuple(found))
    diverging = found.coefficients
    if separated:
        warnings.extend(separated)
        converged = False
    # Coefficients with no finite estimate get no standard error (NaN), and the others their
    # covariance on the complement of the directions the likelihood is flat along in the
    # limit (numerics.covariance); NaN too where the curvature is not positive definite.
    assert estimates.hessian is not None
    rows, kept = kept_rows(n_theta, data.n_fixed, diverging)
    limit = None
    if found.directions:
        flat = found.flat_directions(data.n_fixed)
        basis = complement_basis(flat)
        hessian = project_hessian(estimates.hessian, n_theta, basis)
        vcov_reduced, theta_cov = covariance_from_hessian(hessian, n_theta, at_boundary)
        projected = basis @ vcov_reduced @ basis.T
        vcov_beta, unavailable = spread_covariance(
            projected[np.ix_(kept, kept)], kept, data.n_fixed
        )
        # The finite combinations of the diverging coefficients keep their covariance here.
        projected[list(unavailable), :] = np.nan
        projected[:, list(unavailable)] = np.nan
        limit = LimitCovariance(0.5 * (projected + projected.T), flat)
    else:
        hessian = estimates.hessian if not diverging else estimates.hessian[np.ix_(rows, rows)]
        vcov_kept, theta_cov = covariance_from_hessian(hessian, n_theta, at_boundary)
        vcov_beta, unavailable = spread_covariance(vcov_kept, kept, data.n_fixed)
    if unavailable:
        names = ", ".join(data.fixed_names[j] for j in unavailable)
        warnings.append(
            FitWarning(
                "the curvature of the log-likelihood is not positive definite at the estimates: "
                f"no standard error for {names}",
                ConvergenceWarning,
            )
        )
    if singular:
        warnings.append(
            FitWarning(
                "boundary (singular) fit: a random-effect variance is estimated at zero (or a "
                "correlation at the end of its range)",
                BoundaryWarning,
            )
        )
    if at_limit.any():
        warnings.append(
            FitWarning(
                f"the {data.family.name} family's dispersion is at its limit (phi = inf): no "
                "overdispersion beyond the binomial, whose fit this is (the same logLik and "
                "estimates)",
                BoundaryWarning,
            )
        )
    if not estimates.summary.converged:
        message = f"optimizer did not converge: {estimates.summary.message}"
        if method == "laplace" and not data.family.log_concave:
            message += NOT_LOG_CONCAVE_HINT.format(link=data.family.link)
        warnings.append(FitWarning(message, ConvergenceWarning))
    return FitOutput(
        method=method,
        theta=theta,
        beta=beta,
        vcov_beta=vcov_beta,
        loglik=-0.5 * estimates.deviance,
        loglik_label=loglik_label,
        ranef=ranef,
        ranef_cov=ranef_cov,
        opt_summary=estimates.summary,
        converged=converged,
        singular=singular,
        n_agq=n_agq,
        theta_cov=theta_cov,
        warnings=tuple(warnings),
        separation=found,
        vcov_limit=limit,
    )


def covariance_from_hessian(
    hessian: FloatArray | None, n_theta: int, at_boundary: NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray | None]:
    """Covariance of (beta, theta) as the inverse of half the deviance Hessian.

    theta entries on the boundary are held fixed (their Hessian rows dropped), as the observed
    information is not defined there."""
    assert hessian is not None
    if at_boundary.any():
        keep = np.concatenate([~at_boundary, np.ones(hessian.shape[0] - n_theta, dtype=bool)])
        info = 0.5 * hessian[np.ix_(keep, keep)]
    else:
        info = 0.5 * hessian
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(info)
    n_free_theta = int((~at_boundary).sum())
    vcov_beta = cov[n_free_theta:, n_free_theta:]
    theta_cov = np.full((n_theta, n_theta), np.nan)
    free = np.flatnonzero(~at_boundary)
    theta_cov[np.ix_(free, free)] = cov[:n_free_theta, :n_free_theta]
    return 0.5 * (vcov_beta + vcov_beta.T), theta_cov
