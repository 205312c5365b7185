"""Outer optimization of a deviance over (theta, beta), and the OptSummary that records it.

The optimizer is L-BFGS-B with the exact gradient. beta is optimized in whitened coordinates
beta = beta_glm + T delta, where T T' is the inverse Fisher information of the GLM start, so that
badly scaled predictors (age and age^2) do not slow the quasi-Newton search. theta keeps
lme4's bounds (diagonal entries of each Lambda_t >= 0). A final Newton step on a
finite-difference Hessian of the exact gradient polishes the optimum, and that Hessian gives
the covariance of the estimates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.typing import NDArray

from glmm_binomial.family import inverse_link, working_weights
from glmm_binomial.model import ModelData

FloatArray = NDArray[np.float64]
DevianceAndGradient = Callable[[FloatArray, FloatArray], tuple[float, FloatArray, FloatArray]]


@dataclass(frozen=True)
class OptimizerControl:
    """Tolerances and caps of the outer optimization (all recorded on the result).

    ftol, gtol, max_iter: L-BFGS-B's relative function tolerance, projected-gradient tolerance
        (deviance units) and iteration cap.
    hessian_step: central-difference step of the Hessian, in whitened units.
    hessian_scheme: "forward" (n_theta + n_fixed gradient evaluations, relative error about
        hessian_step, ample for standard errors) or "central" (twice the cost, error squared).
    polish_step_tol: after a Newton polish step shorter than this (whitened units) the Hessian
        is not recomputed; polish_max_steps caps the Newton steps.
    boundary_tol: a diagonal entry of Lambda below this counts as a boundary (singular) fit,
        as lme4's isSingular tol.
    glm_tol, glm_max_iter: the Newton iteration of the GLM start.
    """

    ftol: float = 1e-13
    gtol: float = 1e-7
    max_iter: int = 1000
    hessian_step: float = 1e-4
    hessian_scheme: str = "forward"
    polish_step_tol: float = 1e-3
    polish_max_steps: int = 3
    boundary_tol: float = 1e-4
    glm_tol: float = 1e-10
    glm_max_iter: int = 100


@dataclass(frozen=True)
class OptSummary:
    """What the optimizer did: method, counts, tolerances, time."""

    optimizer: str
    objective: str
    converged: bool
    message: str
    iterations: int
    evaluations: int
    gradient_evaluations: int
    pirls_iterations: int
    pirls_failures: int
    final_gradient_norm: float
    newton_polish: bool
    tolerances: dict[str, float | str]
    seconds: float


def glm_start(data: ModelData, control: OptimizerControl) -> tuple[FloatArray, FloatArray]:
    """Fixed-effects-only logistic regression by Newton's method.

    Returns beta and the upper Cholesky factor R of its Fisher information X' W X (R' R)."""
    x, k, m = data.x, data.successes, data.trials
    # Start from the empirical logit of the overall rate so the first step is well scaled.
    rate = (np.sum(k) + 0.5) / (np.sum(m) + 1.0)
    beta: FloatArray = np.zeros(data.n_fixed)
    eta = np.full(data.n_obs, np.log(rate / (1.0 - rate)))
    try:
        beta = np.asarray(np.linalg.lstsq(x, eta - data.offset, rcond=None)[0], dtype=np.float64)
    except np.linalg.LinAlgError:
        pass
    info_factor = np.eye(data.n_fixed)
    for _ in range(control.glm_max_iter):
        eta = x @ beta + data.offset
        mu = inverse_link(eta)
        w = working_weights(mu, m)
        info = x.T @ (w[:, None] * x)
        info_factor = scipy.linalg.cholesky(info + 1e-12 * np.eye(len(beta)), lower=False)
        step = scipy.linalg.cho_solve((info_factor, False), x.T @ (k - m * mu))
        beta = beta + step
        if float(np.max(np.abs(step))) < control.glm_tol or not np.all(np.isfinite(beta)):
            break
    if not np.all(np.isfinite(beta)):
        beta = np.zeros(data.n_fixed)
        info_factor = np.eye(data.n_fixed)
    return beta, info_factor


@dataclass
class Estimates:
    theta: FloatArray
    beta: FloatArray
    deviance: float
    hessian: FloatArray | None  # of the deviance in (theta, beta), natural units
    summary: OptSummary


def minimize_deviance(
    data: ModelData,
    deviance_and_gradient: DevianceAndGradient,
    control: OptimizerControl,
    counters: object,
    objective_name: str,
    theta0: FloatArray | None = None,
    beta0: FloatArray | None = None,
    fixed_information: Callable[[FloatArray, FloatArray], FloatArray] | None = None,
) -> Estimates:
    """Minimize deviance(theta, beta) from lme4's start (Lambda = I, beta from the GLM).

    fixed_information(theta, beta), when given, approximates half the deviance Hessian in beta
    under the mixed model; at the start it whitens beta better than the GLM's information,
    which ignores the random effects (the intercept's information is far too large)."""
    started = time.perf_counter()
    n_theta = data.n_theta
    beta_glm, info_factor = glm_start(data, control)
    if beta0 is None:
        beta0 = beta_glm
    if theta0 is None:
        theta0 = data.theta_start()
    if fixed_information is not None:
        try:
            info_factor = scipy.linalg.cholesky(fixed_information(theta0, beta0), lower=False)
        except (scipy.linalg.LinAlgError, ValueError):
            pass
    # beta = beta0 + T delta with T = R^{-1}; gradient in delta is T' grad_beta.
    transform = scipy.linalg.solve_triangular(info_factor, np.eye(len(beta0)), lower=False)

    def split(z: FloatArray) -> tuple[FloatArray, FloatArray]:
        return z[:n_theta], beta0 + transform @ z[n_theta:]

    # The optimizer's last point is evaluated again by the polish: remember a few points.
    cache: dict[bytes, tuple[float, FloatArray]] = {}

    def fun(z: FloatArray) -> tuple[float, FloatArray]:
        key = np.asarray(z, dtype=np.float64).tobytes()
        if key in cache:
            value, grad = cache[key]
            return value, grad.copy()
        theta, beta = split(z)
        value, g_theta, g_beta = deviance_and_gradient(theta, beta)
        if not np.isfinite(value):
            value, grad = float("inf"), np.zeros_like(z)
        else:
            grad = np.concatenate([g_theta, transform.T @ g_beta])
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[key] = (value, grad)
        return value, grad.copy()

    lower = data.theta_lower_bounds()
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower] + [(None, None)] * len(beta0)
    z0 = np.concatenate([theta0, np.zeros(len(beta0))])
    result = scipy.optimize.minimize(
        fun,
        z0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": control.ftol, "gtol": control.gtol, "maxiter": control.max_iter},
    )
    z = np.asarray(result.x, dtype=np.float64)
    value = float(result.fun)
    converged = bool(result.success)
    message = str(result.message)

    # Polish with Newton steps on the Hessian of the exact gradient, over the free coordinates.
    free = np.ones(len(z), dtype=bool)
    free[:n_theta] = ~(np.isfinite(lower) & (z[:n_theta] < control.boundary_tol))
    value, grad = fun(z)
    hessian_z = _fd_hessian(fun, z, grad, control.hessian_step, control.hessian_scheme)
    polished = False
    for _ in range(control.polish_max_steps):
        hf = hessian_z[np.ix_(free, free)]
        try:
            chol = scipy.linalg.cho_factor(hf)
        except scipy.linalg.LinAlgError:
            break
        step = np.zeros_like(z)
        step[free] = -scipy.linalg.cho_solve(chol, grad[free])
        trial = z + step
        trial[:n_theta] = np.maximum(trial[:n_theta], np.where(np.isfinite(lower), lower, -np.inf))
        trial_value, trial_grad = fun(trial)
        if not trial_value < value:
            break
        z, value, grad, polished = trial, trial_value, trial_grad, True
        # A short step leaves the Hessian (used for the standard errors) accurate enough.
        if float(np.max(np.abs(step))) < control.polish_step_tol:
            break
        hessian_z = _fd_hessian(fun, z, grad, control.hessian_step, control.hessian_scheme)
    grad_norm = float(np.max(np.abs(grad[free]))) if np.any(free) else 0.0
    if not converged and grad_norm < 1e-4:
        converged, message = True, message + " (gradient small after Newton polish)"

    theta, beta = split(z)
    # Back to natural units: z = (theta, delta), beta = beta0 + T delta.
    jac = scipy.linalg.block_diag(np.eye(n_theta), transform)
    jac_inv = np.linalg.inv(jac)
    hessian = jac_inv.T @ hessian_z @ jac_inv
    counts = counters
    summary = OptSummary(
        optimizer="L-BFGS-B (scipy) + Newton polish",
        objective=objective_name,
        converged=converged,
        message=message,
        iterations=int(result.nit),
        evaluations=int(getattr(counts, "evaluations", 0)),
        gradient_evaluations=int(getattr(counts, "gradients", 0)),
        pirls_iterations=int(getattr(counts, "pirls_iterations", 0)),
        pirls_failures=int(getattr(counts, "pirls_failures", 0)),
        final_gradient_norm=grad_norm,
        newton_polish=polished,
        tolerances={
            "ftol": control.ftol,
            "gtol": control.gtol,
            "max_iter": control.max_iter,
            "hessian_step": control.hessian_step,
            "hessian_scheme": control.hessian_scheme,
            "polish_step_tol": control.polish_step_tol,
            "polish_max_steps": control.polish_max_steps,
            "boundary_tol": control.boundary_tol,
            "glm_tol": control.glm_tol,
            "glm_max_iter": control.glm_max_iter,
        },
        seconds=time.perf_counter() - started,
    )
    return Estimates(theta, beta, value, hessian, summary)


def _fd_hessian(
    fun: Callable[[FloatArray], tuple[float, FloatArray]],
    z: FloatArray,
    grad: FloatArray,
    step: float,
    scheme: str,
) -> FloatArray:
    """Symmetrized finite differences of the exact gradient (forward: n evaluations, error
    O(step); central: 2n evaluations, error O(step^2))."""
    n = len(z)
    hess = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = step
        if scheme == "central":
            hess[:, j] = (fun(z + e)[1] - fun(z - e)[1]) / (2.0 * step)
        else:
            hess[:, j] = (fun(z + e)[1] - grad) / step
    return 0.5 * (hess + hess.T)
