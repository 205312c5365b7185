"""FitOutput: what every estimation method (Laplace, AGQ, variational) hands to GLMMResult."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.diagnostics import ConvergenceWarning, FitWarning, SeparationWarning
from glmm_binomial.model.separation import NO_SEPARATION, Separation
from glmm_binomial.numerics.covariance import LimitCovariance
from glmm_binomial.numerics.optimize import OptSummary

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PosteriorDraws:
    """Posterior draws of a sampling method ("mcmc"), with their diagnostics.

    draws: parameter name -> array (chains, draws): fixed effects (by their names), random-effect
        SDs (sd_<term>|<group>) and correlations (cor_<term2>.<term1>|<group>).
    kinds: name -> "fixed", "sd" or "corr".
    summary: name -> mean, sd, mcse_mean, ess_bulk, ess_tail, r_hat (as ArviZ computes them).
    settings: chains, draws, warm-up, thinning, seed entropy, priors, timings.
    """

    draws: dict[str, FloatArray]
    kinds: dict[str, str]
    summary: dict[str, dict[str, float]]
    settings: dict[str, Any]


@dataclass(frozen=True)
class FitOutput:
    """Estimates of one fit, on the scales the result object reports.

    theta: relative covariance factors in lme4's layout (ModelData.theta_slices); the random
        effects of block t have covariance Lambda_t Lambda_t' (the binomial GLMM has no residual
        scale, so relative = absolute). For "vb_meanfield", theta holds the random-effect SDs at the
        posterior means of the log-SD parameters; for "vb", Lambda Lambda' = diag(E[s]) E[R]
        diag(E[s]) (posterior means of the SDs and of the correlations).
    beta: fixed effects (posterior means for the Bayesian methods); vcov_beta their covariance
        matrix (inverse observed information, or posterior covariance: for "vb_meanfield"
        diagonal).
    loglik: marginal log-likelihood of the binomial GLMM at (theta, beta), binomial
        coefficients included; loglik_label says how it was computed.
    ranef / ranef_cov: per block, conditional modes b = Lambda u (n_levels x k) and their
        conditional covariances (n_levels x k x k); posterior means and covariances for the
        Bayesian methods.
    theta_cov: covariance of theta's estimate where the method gives one (vb_meanfield: of the
        log SDs).
    elbo: the evidence lower bound at the optimum, all constants included (the variational
        methods), a lower bound on the log marginal likelihood of the Bayesian model.
    separation: what the fit found about separation (model.separation.Separation): the
        fixed-effect columns with no finite maximum-likelihood estimate (``coefficients``, also
        ``diverging``; their vcov_beta rows are NaN), whether the fixed effects separate every
        row (``complete``) and the random-effect blocks whose variance has no finite estimate
        (``blocks``). Empty for "vb", whose priors keep every estimate finite.
    prior_deviance, priors: for a penalized (posterior-mode) fit, -2 log prior density at the
        estimates (the objective minimized is -2 loglik + prior_deviance, blme's dev + penalty;
        vbeta and theta_cov come from its curvature) and the priors as the summary lists
        them; 0.0 and () for an unpenalized fit.
    vcov_limit: for a fit separated by the fixed effects, the covariance of the limit along the
        diverging path (numerics.covariance.LimitCovariance): finite for the combinations of
        the coefficients orthogonal to separation.directions (a mixed cell's predictor), which
        vcov_beta's NaN rows leave without one; None otherwise.
    link_bound_rows: how many rows' fitted linear predictor lies at the link's bound (the log
        link's eta = 0, mu = 1; laplace.with_link_bound): the maximum is then on the boundary
        of the parameter space, the fit is not converged and its estimates are no optimum to
        profile around or simulate from; 0 otherwise.
    posterior: the draws of a sampling method ("mcmc"; None for the others). For "mcmc", beta,
        vcov_beta, ranef and ranef_cov are posterior means and covariances and theta is
        diag(posterior mean SDs) chol(posterior mean correlation matrix) in lme4's layout.
    """

    method: str
    theta: FloatArray
    beta: FloatArray
    vcov_beta: FloatArray
    loglik: float
    loglik_label: str
    ranef: tuple[FloatArray, ...]
    ranef_cov: tuple[FloatArray, ...]
    opt_summary: OptSummary
    converged: bool
    singular: bool
    n_agq: int = 1
    theta_cov: FloatArray | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    elbo: float | None = None
    separation: Separation = NO_SEPARATION
    link_bound_rows: int = 0

    @property
    def diverging(self) -> tuple[int, ...]:
        """Fixed-effect columns with no finite maximum-likelihood estimate (separation)."""
        return self.separation.coefficients

    @property
    def limit_verified(self) -> bool:
        """Whether this is a fit separated by the fixed effects alone (some rows mixed, no
        random-effect SD without an estimate) whose optimizer verified its end along every
        other direction: theta and the coefficients off the diverging directions are then the
        estimates of the path's limit (the maximum of the mixed rows' likelihood), though the
        fit as a whole is not converged."""
        return self.separation.by_fixed_effects_alone and self.opt_summary.converged

    @property
    def at_supremum(self) -> bool:
        """Whether the log-likelihood is its supremum, which a likelihood-ratio test compares:
        converged, or separated by the fixed effects alone with the search converged (not
        converged only for the separation: the log-likelihood is its limit along the
        diverging path, to within the separated rows' vanishing contributions; with every row
        separated that limit is 0 whatever theta)."""
        found = self.separation
        return self.converged or (
            bool(found.coefficients) and not found.columns and self.opt_summary.converged
        )

    prior_deviance: float = 0.0
    priors: tuple[str, ...] = ()
    posterior: PosteriorDraws | None = None
    vcov_limit: LimitCovariance | None = None


def final_checks(output: FitOutput) -> FitOutput:
    """The checks every maximum-likelihood path (in memory or on Dask) applies last."""
    return require_finite(without_redundant_convergence(output))


def without_redundant_convergence(output: FitOutput) -> FitOutput:
    """A fit whose random-effect variance runs away, or completely separated, has no optimum
    to verify: its separation warning says why it is not converged, and the optimizer's failed
    checks would only repeat it in other words. A fit separated by the fixed effects alone
    keeps them: its search verifies its end along every other direction (limit_verified),
    and where it did not, that is news (a search that ran elsewhere, the cauchit's Laplace
    rising without bound)."""
    categories = [getattr(w, "category", None) for w in output.warnings]
    if SeparationWarning not in categories:
        return output
    if output.separation.by_fixed_effects_alone:
        return output
    kept = tuple(
        w for w, c in zip(output.warnings, categories, strict=True) if c is not ConvergenceWarning
    )
    return dataclasses.replace(output, warnings=kept)


def require_finite(output: FitOutput) -> FitOutput:
    """converged = False, with a ConvergenceWarning, when the log-likelihood, an estimate or a
    fixed-effect standard error is not finite (theta_cov may hold NaN by design: parameters
    held on the boundary have none)."""
    if not output.converged:
        return output
    bad = [
        name
        for name, values in (
            ("log-likelihood", np.asarray(output.loglik)),
            ("theta", output.theta),
            ("fixed effects", output.beta),
            ("fixed-effect standard errors", np.diag(output.vcov_beta)),
        )
        if not np.isfinite(values).all()
    ]
    if not bad:
        return output
    message = f"the fit is not usable: non-finite {', '.join(bad)}"
    summary = dataclasses.replace(output.opt_summary, converged=False, message=message)
    return dataclasses.replace(
        output,
        converged=False,
        opt_summary=summary,
        warnings=(*output.warnings, FitWarning(message, ConvergenceWarning)),
    )
