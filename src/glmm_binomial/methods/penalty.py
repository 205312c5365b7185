"""The prior deviance of a penalized (posterior-mode) fit as a function of (theta, beta).

    objective(theta, beta) = deviance(theta, beta) + penalty(theta, beta),
    penalty = -2 log p(beta) - 2 sum_t log p(Sigma_t),   Sigma_t = Lambda_t Lambda_t',

with the priors of model.priors stated in the user's units. A fit on internally rescaled
columns (methods.scaling: X~ = X C_x, Z~_t = Z_t C_t) has beta = C_x beta~ and
Sigma_t = C_t Lambda~_t Lambda~_t' C_t': the penalty is evaluated at the user's beta and
Sigma_t, so the rescaling changes nothing about the model. Its gradient is exact:
d/dbeta~ = C_x' d/dbeta, and with G = d penalty / d Sigma_t (symmetric),
d/dLambda~_t = 2 C_t' G C_t Lambda~_t, carried to theta by the structure's chain rule.

PenalizedObjective adds the penalty to a method's objective (Laplace or AGQ): the optimizer,
the Hessian behind the standard errors (the curvature of the penalized objective, as bglmer's
vcov), the profile and the refits then all see the penalized objective.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.diagnostics import ConvergenceWarning, FitWarning
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.priors import BoundCovariancePrior, BoundFixefPrior, Priors
from glmm_binomial.model.validation import block_text
from glmm_binomial.numerics.optimize import (
    OptimizerControl,
    StartPoint,
    deviance_or_none,
    glm_newton,
    glm_value_information_score,
)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Penalty:
    """The priors of a fit bound to one model's layout (and to the column maps of its
    internal columns: beta_user = fixed_map beta, Z_user b_user = Z b with b_user = C_t b,
    so Sigma_user = C_t Sigma C_t'; None: the user's own columns)."""

    model: ModelData
    fixef: BoundFixefPrior | None
    cov: tuple[tuple[BoundCovariancePrior, ...], ...]
    fixed_map: FloatArray | None = None
    block_maps: tuple[FloatArray, ...] | None = None

    def value_and_gradient(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """The prior deviance at (theta, beta) and its exact gradient in theta and beta."""
        model = self.model
        grad_beta = np.zeros(model.n_fixed)
        total = 0.0
        if self.fixef is not None:
            c = self.fixed_map
            user_beta = beta if c is None else c @ beta
            value, grad = self.fixef.deviance_and_gradient(user_beta)
            total += value
            grad_beta = grad if c is None else c.T @ grad
        lambdas = model.lambdas(theta)
        grad_lambdas = []
        for t, (lam, priors) in enumerate(zip(lambdas, self.cov, strict=True)):
            grad_lambda = np.zeros_like(lam)
            if priors:
                c = None if self.block_maps is None else self.block_maps[t]
                factor = lam if c is None else c @ lam
                sigma = factor @ factor.T
                g = np.zeros_like(sigma)
                for prior in priors:
                    value, grad = prior.deviance_and_gradient(sigma)
                    total += value
                    g = g + grad
                if c is not None:
                    g = c.T @ g @ c
                grad_lambda = 2.0 * g @ lam
            grad_lambdas.append(grad_lambda)
        if not np.isfinite(total):
            return float("inf"), np.zeros(model.n_theta), np.zeros(model.n_fixed)
        grad_theta = model.theta_gradient(lambdas, grad_lambdas)
        return float(total), grad_theta, grad_beta

    def beta_curvature(self, beta: FloatArray) -> FloatArray:
        """A positive semi-definite curvature of the penalty in beta (the fixed-effect prior's
        Hessian, or its positive part), in the model's columns."""
        n = self.model.n_fixed
        if self.fixef is None:
            return np.zeros((n, n))
        c = self.fixed_map
        user_beta = beta if c is None else c @ beta
        curvature = self.fixef.curvature(user_beta)
        return curvature if c is None else c.T @ curvature @ c

    def covered(self) -> NDArray[np.bool_]:
        """The fixed effects (model's columns) along which the prior has curvature: a proper
        prior there keeps their posterior mode finite (an Inf prior variance does not)."""
        curvature = self.beta_curvature(np.zeros(self.model.n_fixed))
        return np.asarray(np.diag(curvature) > 0.0)

    def describe(self) -> tuple[str, ...]:
        """Each prior as the summary lists it: "fixef: t(df = 7, scale = 2.5)", "cov (herd):
        wishart(df = 3.5, scale = Inf)"."""
        lines = []
        if self.fixef is not None:
            lines.append(f"fixef: {self.fixef.describe()}")
        for block, priors in zip(self.model.blocks, self.cov, strict=True):
            if priors:
                term = f"{block.group}: {' + '.join(block.terms)}"
                lines.append(f"cov ({term}): {' + '.join(p.describe() for p in priors)}")
        return tuple(lines)


def bind_priors(
    priors: Priors,
    model: ModelData,
    fixed_map: FloatArray | None = None,
    block_maps: tuple[FloatArray, ...] | None = None,
) -> Penalty | None:
    """The penalty of `priors` on `model` (None when there are no priors); ValueError when a
    prior does not fit the model (sizes, a group that is not in the model)."""
    if priors.empty:
        return None
    groups = {b.group for b in model.blocks}
    unknown = [name for name, _ in priors.by_group if name not in groups]
    if unknown:
        raise ValueError(
            f"priors: cov names grouping factor(s) {', '.join(map(repr, unknown))} not in the "
            f"model; its grouping factors: {', '.join(map(repr, sorted(groups)))}"
        )
    if priors.fixef is not None and model.n_fixed == 0:
        raise ValueError(
            "priors: fixef gives a prior for the fixed effects, and the model has none"
        )
    fixef = None if priors.fixef is None else priors.fixef.bind(model.n_fixed)
    cov = tuple(tuple(p.bind(b.k) for p in priors.for_group(b.group)) for b in model.blocks)
    return Penalty(model, fixef, cov, fixed_map, block_maps)


class PenalizedObjective:
    """A method's objective plus a penalty: deviance_and_gradient returns the penalized
    objective and its exact gradient; everything else (data, mode, counters, ...) is the
    objective's own."""

    def __init__(self, objective: Any, penalty: Penalty) -> None:
        self.objective = objective
        self.penalty = penalty

    def __getattr__(self, name: str) -> Any:
        if name == "objective":  # not yet set (copy.copy builds the instance without __init__)
            raise AttributeError(name)
        return getattr(self.objective, name)

    def deviance(self, theta: FloatArray, beta: FloatArray) -> float:
        """The penalized objective (deviance + prior deviance)."""
        value, _, _ = self.penalty.value_and_gradient(theta, beta)
        return float(self.objective.deviance(theta, beta)) + value

    def deviance_and_gradient(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """The penalized objective and its exact gradient in theta and beta."""
        return plus_penalty(self.objective.deviance_and_gradient, self.penalty, theta, beta)

    def fixed_information(self, theta: FloatArray, beta: FloatArray) -> FloatArray:
        """The objective's fixed-effects information plus half the prior's curvature."""
        info = self.objective.fixed_information(theta, beta)
        return np.asarray(info + 0.5 * self.penalty.beta_curvature(beta), dtype=np.float64)


DevianceAndGradient = Callable[[FloatArray, FloatArray], tuple[float, FloatArray, FloatArray]]


def plus_penalty(
    deviance_and_gradient: DevianceAndGradient,
    penalty: Penalty,
    theta: FloatArray,
    beta: FloatArray,
) -> tuple[float, FloatArray, FloatArray]:
    """deviance_and_gradient(theta, beta) plus the penalty's value and gradient there (a
    function of (theta, beta): PenalizedObjective's, or a Dask fit's check in the user's
    units)."""
    prior, p_theta, p_beta = penalty.value_and_gradient(theta, beta)
    value, g_theta, g_beta = deviance_and_gradient(theta, beta)
    return value + prior, g_theta + p_theta, g_beta + p_beta


def fixef_deviance_and_gradient(penalty: Penalty, beta: FloatArray) -> tuple[float, FloatArray]:
    """The fixed-effect prior's deviance and gradient alone, in the model's columns."""
    if penalty.fixef is None:
        return 0.0, np.zeros(penalty.model.n_fixed)
    c = penalty.fixed_map
    value, grad = penalty.fixef.deviance_and_gradient(beta if c is None else c @ beta)
    return value, grad if c is None else c.T @ grad


def penalized_start(
    data: ModelData, control: OptimizerControl, penalty: Penalty | None, start: StartPoint
) -> StartPoint:
    """With a fixed-effect prior, beta of the start from the GLM with that prior (the GLM's
    own may run to infinity under separation): penalized_glm on data's rows. theta as given."""
    if penalty is None or penalty.fixef is None:
        return start
    beta, info_factor = penalized_glm(
        lambda beta: glm_value_information_score(data, beta), penalty, control
    )
    return StartPoint(start.theta, beta, info_factor)


def penalized_glm(
    value_information_score: Callable[[FloatArray], tuple[float, FloatArray, FloatArray]],
    penalty: Penalty,
    control: OptimizerControl,
) -> tuple[FloatArray, FloatArray]:
    """Newton's method (glm_newton) from beta = 0 on the GLM with the penalty's fixed-effect
    prior, given the GLM's log-likelihood, information and score at beta (sums over rows, in
    memory or over a Dask fit's partitions), with the prior's positive curvature (for the t,
    its EM weights): beta and the upper Cholesky factor of that information."""

    def penalized(beta: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        value, info, score = value_information_score(beta)
        prior, grad = fixef_deviance_and_gradient(penalty, beta)
        information = info + 0.5 * penalty.beta_curvature(beta)
        return value - 0.5 * prior, information, score - 0.5 * grad

    return glm_newton(np.zeros(penalty.model.n_fixed), penalized, control)


def with_prior_runaway(
    output: FitOutput,
    penalty: Penalty | None,
    runaway_blocks: Callable[[], tuple[int, ...]],
    deviance_and_gradient: DevianceAndGradient,
    control: OptimizerControl,
) -> FitOutput:
    """output, not converged and with a ConvergenceWarning, where the penalized deviance falls
    below its value at the end further out along the blocks runaway_blocks() gives (those
    whose random effect on some row has an SD past the separation screen:
    separation.runaway_blocks in memory, distributed.start.runaway_rows on Dask; asked only
    of a fit with a covariance prior), their covariance scaled by
    control.prior_runaway_factor squared and to the fourth with beta refitted. A covariance
    prior that rewards large variances (blme's default Wishart, scale = Inf: -(df - q - 1)
    log det Sigma) can outweigh a likelihood that levels off as the groups come to predict
    the response: the penalized deviance then has no minimum, and the search's end is a
    local dip on the way out (its gradient vanishes there), not a posterior mode. output as
    it is without a covariance prior or such a block."""
    if penalty is None or not any(penalty.cov):
        return output
    runaway = runaway_blocks()
    if not any(penalty.cov[t] for t in runaway):
        return output
    # Imported here: a Laplace fit on unseparated data needs no scipy.optimize (first calls).
    import scipy.optimize

    model = penalty.model
    theta, beta = output.theta, output.beta
    end = deviance_or_none(deviance_and_gradient, theta, beta)[0]
    if not np.isfinite(end):
        return output  # no deviance at the end: not converged already, said so
    factor = control.prior_runaway_factor
    for step in (factor, factor * factor):
        further = model.theta_scaled(theta, runaway, step)

        def at_beta(b: FloatArray, further: FloatArray = further) -> tuple[float, FloatArray]:
            value, _, grad = deviance_or_none(deviance_and_gradient, further, b)
            return value, grad

        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # (scipy's line search meets the inf of a failed evaluation)
            found = scipy.optimize.minimize(
                at_beta,
                beta,
                jac=True,
                method="BFGS",
                options={"maxiter": control.prior_runaway_max_iter},
            )
        if np.isfinite(found.fun) and found.fun < end - control.decrement_tol:
            return with_no_mode(output, penalty, runaway, end, float(found.fun), step)
    return output


def with_no_mode(
    output: FitOutput,
    penalty: Penalty,
    runaway: tuple[int, ...],
    end: float,
    further: float,
    step: float,
) -> FitOutput:
    """output marked as no posterior mode (with_prior_runaway), the warning naming the terms,
    their priors and the two penalized deviances."""
    blocks = [penalty.model.blocks[t] for t in runaway]
    terms = ", ".join(block_text(b) for b in blocks)
    priors = "; ".join(
        " + ".join(p.describe() for p in penalty.cov[t]) for t in runaway if penalty.cov[t]
    )
    warning = FitWarning(
        f"no finite posterior mode: under the covariance prior ({priors}) the penalized "
        f"deviance keeps falling as the SDs of {terms} grow ({end:.6g} at the search's end, "
        f"{further:.6g} with those SDs {step:g} times as large and the fixed effects "
        "refitted): the prior outweighs the likelihood there, whose groups come to predict "
        "the response; the reported values are a local dip on the way out, not estimates. "
        "A proper covariance prior (a finite scale: wishart(scale = ...), gamma(rate = ...), "
        "invwishart) keeps the SDs finite",
        ConvergenceWarning,
    )
    return replace(output, converged=False, warnings=(*output.warnings, warning))


def with_penalty(output: FitOutput, penalty: Penalty | None) -> FitOutput:
    """The FitOutput of a penalized fit (whose loglik came from the penalized objective, -1/2
    times it): the log-likelihood at the mode, the prior deviance there and the priors."""
    if penalty is None:
        return output
    value, _, _ = penalty.value_and_gradient(output.theta, output.beta)
    return replace(
        output,
        loglik=output.loglik + 0.5 * value,
        prior_deviance=value,
        priors=penalty.describe(),
    )
