"""One entry point for intervals of every parameter: Wald, profile, bootstrap, or the credible
intervals of a fit with posterior draws (method "mcmc").

Rows are lme4's parameter names in lme4's order (`sd_<term>|<group>`, `cor_<a>.<b>|<group>`
per block, then the beta-binomial's dispersion `phi`, then the fixed effects; see
results.parameters); columns `lower` and `upper`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from glmm_binomial.arguments import fraction
from glmm_binomial.numerics import normal
from glmm_binomial.results.aliases import renamed_level
from glmm_binomial.results.base import ResultBase
from glmm_binomial.results.bootstrap import bootstrap
from glmm_binomial.results.parameters import (
    all_parameters,
    chosen_parameters,
    covariance_parameter_names,
    covariance_parameters,
    covariance_values,
)
from glmm_binomial.results.posterior import posterior_confint
from glmm_binomial.results.profile import profile_confint

METHODS = ("wald", "profile", "boot", "posterior")

__all__ = [
    "METHODS",
    "all_parameters",
    "confint",
    "covariance_parameter_names",
    "covariance_parameters",
    "covariance_values",
    "posterior_confint",
    "wald_confint",
]


def wald_confint(result: ResultBase, conf_level: float) -> pd.DataFrame:
    """Wald intervals of the fixed effects; NaN for the covariance parameters (as lme4); the
    beta-binomial's phi on the log scale, exp(log phi -+ z SE(log phi)) (glmmTMB's)."""
    estimates = all_parameters(result)
    n_cov = len(estimates) - len(result.params)
    se = np.concatenate([np.full(n_cov, np.nan), result.bse.to_numpy()])
    q = normal.quantile(0.5 + conf_level / 2.0)  # scipy.stats.norm.ppf
    table = pd.DataFrame(
        {"lower": estimates.to_numpy() - q * se, "upper": estimates.to_numpy() + q * se},
        index=pd.Index(estimates.index, name="parameter"),
    )
    phi, phi_se = result.phi, result.phi_se
    if phi is not None and phi_se is not None:
        log_se = phi_se / phi
        table.loc["phi"] = [phi * np.exp(-q * log_se), phi * np.exp(q * log_se)]
    return table


def confint(
    result: ResultBase,
    method: str | None = None,
    conf_level: float = 0.95,
    *,
    parm: Any = None,
    level: float | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Confidence intervals at `conf_level` for every parameter (or those in `parm`).

    method "wald": estimate +- z SE for the fixed effects (NaN for SDs and correlations);
    "profile": profile likelihood (Laplace fits; options go to
    glmm_binomial.results.profile.profile, e.g. control=); "boot": parametric-bootstrap
    percentile intervals (options go to glmm_binomial.results.bootstrap, e.g. n_boot=, seed=,
    n_jobs=); "posterior": equal-tailed credible intervals, quantiles of the posterior draws
    (fits with draws: method "mcmc"). None: "posterior" for a fit with draws, "wald" for
    another posterior fit (variational Bayes: the Gaussian posterior's mean -+ z SD, which no
    profile exists for), else "profile".
    Method names in any letter case (lme4's "Wald").
    parm: lme4's, the parameters wanted: a name or a list of names (the rows' names),
    "theta_" (the SDs, correlations and phi) or "beta_" (the fixed effects); None: all. The
    profile method profiles only those (its which=).
    level: the deprecated name of conf_level."""
    conf_level = renamed_level(conf_level, level)
    if method is None:
        if result.posterior is not None:
            method = "posterior"
        elif getattr(result.method_object, "posterior", False):
            method = "wald"
        else:
            method = "profile"
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    method = method.lower()
    conf_level = fraction(conf_level, "conf_level")
    # The rows wanted, checked before any work (a bootstrap refits the model many times).
    estimates = all_parameters(result)
    n_cov = len(estimates) - len(result.params)
    rows = chosen_parameters(
        list(estimates.index), [i >= n_cov for i in range(len(estimates))], parm, "parm"
    )
    if method == "profile":
        if parm is not None and options.get("which") is not None:
            raise ValueError("give parm or which, not both (which is profile()'s name for parm)")
        if parm is not None:
            options["which"] = rows
        return profile_confint(result, conf_level, **options)
    if method in ("wald", "posterior") and options:
        raise ValueError(f"method {method!r} takes no options, got {', '.join(options)}")
    if method == "wald":
        table = wald_confint(result, conf_level)
    elif method == "posterior":
        table = posterior_confint(result, conf_level)
    else:
        table = bootstrap(result, **options).confint(conf_level)
    return table if parm is None else table.loc[rows]
