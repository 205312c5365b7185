"""Penalized iteratively reweighted least squares: the conditional mode of u given (beta, theta).

The mode maximizes the penalized log-likelihood sum_i l_i(eta_i) - |u|^2 / 2, i.e. minimizes
the penalized deviance  -2 sum_i l_i(eta) + |u|^2  (binomial constants excluded), by Newton
steps  H delta = (Z Lambda)' l'(eta) - u  with step halving, H = (Z Lambda)' W (Z Lambda) + I and
W the family's observed weights -l''(eta) (for the logit link m mu (1 - mu)).

Families whose row log-likelihood is not concave in eta (the cauchit link, the beta-binomial)
can have negative observed weights far from the data, where H need not be positive definite:
their Newton steps use the weights clipped at zero (H >= I, so every step is a descent
direction, and where no weight is negative, as near a mode fitted to data, it is Newton's own
step), and at the mode H is factored again with the observed weights, which the Laplace
approximation's log-determinant and the exact gradients need (glmmTMB's Hessian). A mode where
that H is not positive definite is no maximum: its penalized deviance is reported as inf.

A start where the likelihood is zero (the log link with some eta > 0) is replaced by u = 0; if
that is infeasible too, the mode search gives up at once with an infinite penalized deviance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics.factor import Factor, Structure

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PirlsControl:
    """Stopping rules of the inner Newton iteration.

    tol: stop when the Newton decrement g' H^{-1} g (deviance units) falls below it. It is tight
        because the exact gradient of the Laplace deviance is only as accurate as the mode.
    stall_tol: a step that cannot lower the penalized deviance (rounding) still counts as
        converged when the decrement is below this.
    max_iter: cap on Newton steps per mode; max_halvings: cap on step reductions per step.
    max_predicted_step: the warm start moves the last mode to first order in the parameter
        change unless that moves some u by more than this (u is on the N(0, 1) scale).
    """

    tol: float = 1e-14
    stall_tol: float = 1e-8
    max_iter: int = 100
    max_halvings: int = 40
    max_predicted_step: float = 1.0


@dataclass
class Mode:
    """Conditional mode and everything evaluated there."""

    u1: FloatArray
    u2: FloatArray
    a1: FloatArray
    a2: FloatArray
    eta: FloatArray
    mu: FloatArray
    weights: FloatArray
    residual: FloatArray  # k - m mu
    factor: Factor
    penalized_deviance: float
    iterations: int
    converged: bool
    lambdas: list[FloatArray]


def penalized_deviance(
    eta: FloatArray,
    data: ModelData,
    u1: FloatArray,
    u2: FloatArray,
    scratch: tuple[FloatArray, FloatArray],
) -> tuple[float, FloatArray]:
    """-2 sum_i l_i(eta_i) + |u|^2 (binomial constants excluded), and mu at eta."""
    mu, loglik = data.family.mean_and_loglik(eta, data.successes, data.trials, scratch)
    return -2.0 * loglik + float(np.sum(u1 * u1) + np.sum(u2 * u2)), mu


def find_mode(
    structure: Structure,
    data: ModelData,
    eta_fixed: FloatArray,
    lambdas: list[FloatArray],
    u1: FloatArray,
    u2: FloatArray,
    control: PirlsControl,
) -> Mode:
    """Newton iteration for u from the start (u1, u2); eta_fixed = X beta + offset."""
    a1, a2 = structure.z_lambda(data, lambdas)
    lambda1 = structure.first_lambda(lambdas)
    eta = eta_fixed + structure.times(a1, a2, u1, u2)
    scratch = (np.empty_like(eta), np.empty_like(eta))
    pdev, mu = penalized_deviance(eta, data, u1, u2, scratch)
    concave = data.family.log_concave
    if not np.isfinite(pdev):
        u1, u2 = np.zeros_like(u1), np.zeros_like(u2)
        eta = eta_fixed + structure.times(a1, a2, u1, u2)
        pdev, mu = penalized_deviance(eta, data, u1, u2, scratch)
        if not np.isfinite(pdev):
            return _infeasible(structure, data, a1, a2, eta, mu, u1, u2, lambda1, lambdas)
    converged = False
    iteration = 0
    while True:
        w, residual = data.family.weights_and_residual(
            eta, mu, data.successes, data.trials, structure.unit_trials
        )
        w_newton = w if concave else np.maximum(w, 0.0)
        factor = structure.factorize(a1, a2, w_newton, lambda1)
        g1, g2 = structure.transpose_times(a1, a2, residual)
        g1 = g1 - u1
        g2 = g2 - u2
        d1, d2 = factor.solve(g1, g2)
        decrement = float(np.sum(g1 * d1) + np.sum(g2 * d2))
        if decrement < control.tol or iteration >= control.max_iter:
            converged = decrement < control.tol
            break
        iteration += 1
        step = 1.0
        for _ in range(control.max_halvings):
            new_u1, new_u2 = u1 + step * d1, u2 + step * d2
            new_eta = eta_fixed + structure.times(a1, a2, new_u1, new_u2)
            new_pdev, new_mu = penalized_deviance(new_eta, data, new_u1, new_u2, scratch)
            if new_pdev <= pdev + 1e-12 * abs(pdev):
                break
            # Backtrack to the minimum of the quadratic through pdev(0), its slope
            # -2 * decrement and pdev(step), kept within [0.1, 0.5] of the step: a far
            # overshoot (saturated fitted probabilities) then shrinks in one go.
            slope = -2.0 * decrement
            curvature = new_pdev - pdev - slope * step
            shrink = -slope * step / (2.0 * curvature) if curvature > 0 else 0.5
            step *= min(max(shrink, 0.1), 0.5)
        else:
            converged = decrement < control.stall_tol
            break
        u1, u2, eta, pdev, mu = new_u1, new_u2, new_eta, new_pdev, new_mu
    if w_newton is not w and np.any(w < 0.0):
        observed = observed_factor(structure, a1, a2, w, lambda1)
        if observed is None:
            pdev, converged = float("inf"), False
        else:
            factor = observed
    return Mode(u1, u2, a1, a2, eta, mu, w, residual, factor, pdev, iteration, converged, lambdas)


def observed_factor(
    structure: Structure, a1: FloatArray, a2: FloatArray, w: FloatArray, lambda1: FloatArray
) -> Factor | None:
    """The factor of H with the observed weights w (some negative), or None when that H is
    not positive definite."""
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = structure.factorize(a1, a2, w, lambda1)
    except (np.linalg.LinAlgError, ValueError):
        return None
    return factor if np.isfinite(factor.logdet) else None


def _infeasible(
    structure: Structure,
    data: ModelData,
    a1: FloatArray,
    a2: FloatArray,
    eta: FloatArray,
    mu: FloatArray,
    u1: FloatArray,
    u2: FloatArray,
    lambda1: FloatArray,
    lambdas: list[FloatArray],
) -> Mode:
    """A mode search that cannot start (zero likelihood at u = 0): infinite penalized
    deviance, not converged, with the Fisher weights' factor so that the Mode is complete."""
    w, residual = data.family.fisher_weights_and_residual(eta, mu, data.successes, data.trials)
    w = np.where(np.isfinite(w), np.maximum(w, 0.0), 0.0)
    factor = structure.factorize(a1, a2, w, lambda1)
    return Mode(u1, u2, a1, a2, eta, mu, w, residual, factor, float("inf"), 0, False, lambdas)
