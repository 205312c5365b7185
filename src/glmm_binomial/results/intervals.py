"""One entry point for confidence intervals of every parameter: Wald, profile or bootstrap.

Rows are lme4's parameter names in lme4's order (`sd_<term>|<group>`, `cor_<a>.<b>|<group>`
per block, then the beta-binomial's dispersion `phi`, then the fixed effects); columns `lower`
and `upper`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics.covariance import sd_correlation

if TYPE_CHECKING:
    from glmm_binomial.results.result import GLMMResult

METHODS = ("wald", "profile", "boot")


def covariance_parameter_names(result: GLMMResult) -> list[str]:
    """lme4's names of the SDs and correlations, in theta's layout (then "phi" for the
    beta-binomial family)."""
    names = []
    for block in result.model.blocks:
        rows, cols = block.lower_indices()
        for r, c in zip(rows, cols, strict=True):
            if r == c:
                names.append(f"sd_{block.terms[r]}|{block.group}")
            else:
                names.append(f"cor_{block.terms[r]}.{block.terms[c]}|{block.group}")
    if result.model.family.n_parameters:
        names.append("phi")
    return names


def covariance_values(model: ModelData, theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """SDs and correlations of the random effects at theta, in theta's layout (NaN for a
    correlation with a zero SD), then the beta-binomial's phi = exp(theta's tail)."""
    values: list[float] = []
    for block, lam in zip(model.blocks, model.lambdas(theta), strict=True):
        sd, corr = sd_correlation(lam @ lam.T)
        rows, cols = block.lower_indices()
        for r, c in zip(rows, cols, strict=True):
            values.append(float(sd[r]) if r == c else float(corr[r, c]))
    if model.family.n_parameters:
        values.extend(np.exp(np.asarray(theta)[model.family_slice]).tolist())
    return np.array(values, dtype=np.float64)


def covariance_parameters(result: GLMMResult) -> pd.Series:
    """The SDs and correlations of the random effects, named as lme4 names them."""
    values = covariance_values(result.model, result.fit_output.theta)
    return pd.Series(values, index=covariance_parameter_names(result), dtype=np.float64)


def all_parameters(result: GLMMResult) -> pd.Series:
    """Covariance parameters then fixed effects, as confint() lists them."""
    return pd.concat([covariance_parameters(result), result.params.rename(None)])


def wald_confint(result: GLMMResult, level: float) -> pd.DataFrame:
    """Wald intervals of the fixed effects; NaN for the covariance parameters (as lme4); the
    beta-binomial's phi on the log scale, exp(log phi -+ z SE(log phi)) (glmmTMB's)."""
    estimates = all_parameters(result)
    n_cov = len(estimates) - len(result.params)
    se = np.concatenate([np.full(n_cov, np.nan), result.bse.to_numpy()])
    q = stats.norm.ppf(0.5 + level / 2.0)
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
    result: GLMMResult, method: str = "profile", level: float = 0.95, **options: Any
) -> pd.DataFrame:
    """Confidence intervals at `level` for every parameter.

    method "wald": estimate +- z SE for the fixed effects (NaN for SDs and correlations);
    "profile": profile likelihood (Laplace fits; options go to
    glmm_binomial.results.profile.profile, e.g. which=, control=); "boot": parametric-bootstrap
    percentile intervals (options go to glmm_binomial.results.bootstrap, e.g. n_boot=, seed=,
    n_jobs=)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError("level must be strictly between 0 and 1")
    if method == "wald":
        if options:
            raise ValueError(f"method 'wald' takes no options, got {', '.join(options)}")
        return wald_confint(result, float(level))
    if method == "profile":
        from glmm_binomial.results.profile import profile_confint

        return profile_confint(result, float(level), **options)
    from glmm_binomial.results.bootstrap import bootstrap

    return bootstrap(result, **options).confint(float(level))
