"""Responses simulated from a fitted model, and refits of the same model to a new response.

simulate: successes drawn by the model's family at the estimates (Binomial(trials, F(eta)), or
for the beta-binomial p ~ Beta(mu phi, (1 - mu) phi) then Binomial(trials, p)) with
eta = X beta + offset + Z b, where b are the fitted conditional modes (use_u=True, lme4's
use.u = TRUE) or new draws b = Lambda u, u ~ N(0, I) (use_u=False, the default, as lme4's).
Randomness only from the given seed.

refit: the same model structure (design, grouping, trials, offset) with a new response, fitted
from the current estimates. `fast_refit` is the bootstrap's lighter path: the optimizer alone,
in coordinates whitened by the original fit's Hessian, without standard errors or modes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from glmm_binomial.arguments import positive_int
from glmm_binomial.family import log_binomial_coefficient
from glmm_binomial.methods.laplace import LaplaceObjective, first_factor_order
from glmm_binomial.methods.penalty import PenalizedObjective, bind_priors
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.priors import NO_PRIORS, Priors
from glmm_binomial.numerics.hessian import gradient_hessian
from glmm_binomial.numerics.optimize import canonical_theta, off_boundary
from glmm_binomial.numerics.quasi_newton import minimize_bfgs
from glmm_binomial.numerics.seeds import generator
from glmm_binomial.results.base import ResultBase

FloatArray = NDArray[np.float64]

R = TypeVar("R", bound=ResultBase)


def linear_predictor(
    model: ModelData,
    theta: FloatArray,
    beta: FloatArray,
    rng: np.random.Generator | None,
    modes: tuple[FloatArray, ...] | None,
) -> FloatArray:
    """X beta + offset + Z b: b the given conditional modes, or drawn from N(0, Lambda Lambda')
    per level with `rng` (block by block, in ModelData order)."""
    eta = model.x @ beta + model.offset
    lambdas = model.lambdas(theta)
    for t, block in enumerate(model.blocks):
        if modes is not None:
            b = modes[t]
        else:
            assert rng is not None
            u = rng.standard_normal((block.n_levels, block.k))
            b = u @ lambdas[t].T
        eta = eta + np.einsum("ic,ic->i", block.z, b[block.codes])
    return eta


def simulate_successes(
    model: ModelData,
    theta: FloatArray,
    beta: FloatArray,
    rng: np.random.Generator,
    modes: tuple[FloatArray, ...] | None = None,
) -> FloatArray:
    """One simulated response (successes per row), as floats, drawn by the model's family at
    theta's family parameters (the beta-binomial's phi)."""
    eta = linear_predictor(model, theta, beta, rng, modes)
    return model.family_at(theta).simulate(eta, model.trials, rng)


def simulate(result: ResultBase, n: int = 1, seed: Any = None, use_u: bool = False) -> FloatArray:
    """`n` simulated responses (successes per row, in the fit's row order), shape (nobs, n).

    use_u=False draws new random effects for each simulation (lme4's default); use_u=True
    holds them at the fitted conditional modes. seed: anything numpy.random.default_rng takes."""
    positive_int(n, "n")
    if not isinstance(use_u, bool):
        raise ValueError("use_u must be True or False")
    rng = generator(seed)
    model, fit = result.model, result.fit_output
    modes = fit.ranef if use_u else None
    columns = [simulate_successes(model, fit.theta, fit.beta, rng, modes) for _ in range(int(n))]
    return np.column_stack(columns)


def with_response(model: ModelData, successes: Any) -> ModelData:
    """The model with a new response (successes per row, 0 <= successes <= trials)."""
    try:
        y = np.asarray(successes, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "new_response must be numbers (successes per row of the fit); "
            f"{type(successes).__name__} given holds values that are not"
        ) from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (model.n_obs,):
        raise ValueError(
            f"new_response must have one value per row of the fit ({model.n_obs}), "
            f"got shape {y.shape}"
        )
    bad = ~np.isfinite(y) | (y < 0) | (y > model.trials)
    if np.any(bad):
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"new_response must be successes between 0 and the trials of each row; row {row} "
            f"has {y[row]!r} with {model.trials[row]!r} trials"
        )
    return replace(
        model, successes=y, log_binomial_constant=log_binomial_coefficient(y, model.trials)
    )


def refit(result: R, new_response: Any) -> R:
    """The same model fitted to a new response by the same method with the same settings,
    starting from the current estimates (maximum-likelihood methods); a result of the same
    class (ResultBase.with_fit)."""
    method = result.method_object
    if method.posterior:
        raise ValueError(
            f"refit is available for maximum-likelihood fits, not method {method.name!r}"
        )
    model = with_response(result.model, new_response)
    fit = result.fit_output
    output = method.fit(model, start=(fit.theta, fit.beta))
    return result.with_fit(model, output)


@dataclass(frozen=True)
class FastRefit:
    """What the bootstrap needs to refit one model many times: its structure, the start
    (the original estimates) and the whitening of (theta, beta) by the original Hessian."""

    model: ModelData
    theta: FloatArray
    beta: FloatArray
    transform: FloatArray  # (theta, beta) = start + transform @ z
    gtol: float = 1e-5
    ftol: float = 1e-12
    max_iter: int = 500
    max_step: float = 2.0
    priors: Priors = NO_PRIORS  # a penalized fit's priors: the refits are penalized too
    # model's row i is the fitted model's row order[i] (None: the same order), see in_fit_order
    order: NDArray[np.intp] | None = None
    zero_start: float = 1e-3  # a variance at exactly zero starts here (optimize.off_boundary)
    boundary_tol: float = 1e-4  # a correlation this close to +-1 (structured) ...
    saturation_start: float = 1e-2  # ... starts this far inside its range
    noise_tol: float = 1e-8  # a family parameter's limit no worse than this is taken


def deviance_hessian(result: ResultBase, step: float = 1e-4, central: bool = False) -> FloatArray:
    """Hessian of the Laplace deviance (plus the prior deviance of a penalized fit) in
    (theta, beta) at the estimates: forward (or central) differences of the exact gradient,
    steps relative to each coordinate."""
    model, fit = result.model, result.fit_output
    objective = _objective(model, _priors(result))
    n_theta = model.n_theta
    x0 = np.concatenate([fit.theta, fit.beta])

    def gradient(x: FloatArray) -> FloatArray:
        _, g_theta, g_beta = objective.deviance_and_gradient(x[:n_theta], x[n_theta:])
        return np.concatenate([g_theta, g_beta])

    # The gradient at the estimates first, also for central differences: the mode found there
    # warm-starts the mode searches of the shifted points.
    g0 = gradient(x0)
    return gradient_hessian(
        gradient,
        x0,
        step,
        scheme="central" if central else "forward",
        relative=True,
        gradient_at_x=g0,
    )


def prepare_fast_refit(result: ResultBase, step: float = 1e-4) -> FastRefit:
    """Whitening from a forward-difference Hessian of the exact gradient at the estimates."""
    if result.method != "laplace":
        raise ValueError("bootstrap refits are available for method='laplace' fits")
    fit = result.fit_output
    hess = deviance_hessian(result, step)
    n = hess.shape[0]
    # A variance at zero (or a flat direction) has no curvature: scale it by 1 there.
    hess += np.diag(np.where(np.diag(hess) > 1e-6, 0.0, 1.0))
    try:
        r = scipy.linalg.cholesky(hess, lower=False)
        transform = scipy.linalg.solve_triangular(r, np.eye(n), lower=False)
    except scipy.linalg.LinAlgError:
        transform = np.diag(1.0 / np.sqrt(np.abs(np.diag(hess))))
    # The rows sorted as the Laplace objective wants them (by the largest grouping factor), so
    # that each refit skips the sort; the simulated responses follow that order.
    order = first_factor_order(result.model)
    model = result.model if order is None else result.model.take(order)
    return FastRefit(
        model, fit.theta.copy(), fit.beta.copy(), transform, priors=_priors(result), order=order
    )


def in_fit_order(plan: FastRefit, successes: FloatArray) -> FloatArray:
    """Successes per row of plan.model in the fitted model's row order (for its refit)."""
    if plan.order is None:
        return successes
    out = np.empty_like(successes)
    out[plan.order] = successes
    return out


def _priors(result: ResultBase) -> Priors:
    """The priors of the fit's method (none for a maximum-likelihood fit)."""
    priors = getattr(result.method_object, "priors", NO_PRIORS)
    return priors if isinstance(priors, Priors) else NO_PRIORS


def _objective(model: ModelData, priors: Priors) -> Any:
    """The Laplace deviance of `model`, plus the prior deviance of `priors`."""
    objective = LaplaceObjective(model)
    penalty = bind_priors(priors, model)
    return objective if penalty is None else PenalizedObjective(objective, penalty)


def fast_refit(
    plan: FastRefit, successes: FloatArray
) -> tuple[FloatArray, FloatArray, float, bool, str]:
    """theta, beta, deviance, converged, message of the model fitted to `successes` by BFGS
    (numerics.quasi_newton) from the original estimates in the whitened coordinates (no
    Hessian, no modes)."""
    model = with_response(plan.model, successes)
    objective = _objective(model, plan.priors)
    n_theta = model.n_theta
    # A boundary fit's exact zeros and saturated correlations would never move.
    start = off_boundary(
        model, plan.theta, plan.zero_start, plan.boundary_tol, plan.saturation_start
    )
    x0 = np.concatenate([start, plan.beta])
    transform = plan.transform

    def fun(z: FloatArray) -> tuple[float, FloatArray]:
        x = x0 + transform @ z
        value, g_theta, g_beta = objective.deviance_and_gradient(x[:n_theta], x[n_theta:])
        if not np.isfinite(value):
            return float("inf"), np.zeros_like(z)
        return value, transform.T @ np.concatenate([g_theta, g_beta])

    # In z the deviance Hessian is about I (whitened by the original fit's): BFGS from I
    # starts with near-Newton steps.
    found = minimize_bfgs(
        fun,
        np.zeros(len(x0)),
        np.eye(len(x0)),
        gtol=plan.gtol,
        ftol=plan.ftol,
        max_iter=plan.max_iter,
        max_step=plan.max_step,
    )
    x = x0 + transform @ np.asarray(found.x)
    theta = canonical_theta(model, x[:n_theta])
    beta = x[n_theta:]
    deviance = float(found.fun)
    limit = model.theta_at_limit(theta)
    if limit is not None and np.isfinite(deviance) and not np.array_equal(limit, theta):
        # A family parameter run far out (the beta-binomial's phi without overdispersion):
        # its limit where that is no worse, as optimize.limit_end puts a fit's.
        at_limit = float(objective.deviance(limit, beta))
        if at_limit <= deviance + plan.noise_tol:
            theta, deviance = limit, at_limit
    ok = bool(found.success) and np.isfinite(deviance) and bool(np.all(np.isfinite(x)))
    return theta, beta, deviance, ok, str(found.message)
