"""Every parameter of a fit as lme4 names and orders them: per block the SDs and correlations
(`sd_<term>|<group>`, `cor_<a>.<b>|<group>`, in theta's layout), then the beta-binomial's
dispersion `phi`, then the fixed effects.

The rows of confint() and the columns of the bootstrap's replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics.covariance import sd_correlation
from glmm_binomial.results.base import ResultBase


def covariance_parameter_names(result: ResultBase) -> list[str]:
    """lme4's names of the SDs and correlations, in theta's layout (then "phi" for the
    beta-binomial family)."""
    names = []
    for block in result.model.blocks:
        # Each structure's parameters as covariance entries (lme4's: the lower triangle;
        # ar1: the common SD as sd_<first term> and rho as cor_<second>.<first>).
        for r, c in block.covariance.parameter_entries():
            if r == c:
                names.append(f"sd_{block.terms[r]}|{block.group}")
            else:
                names.append(f"cor_{block.terms[r]}.{block.terms[c]}|{block.group}")
    if result.model.family.n_parameters:
        names.append("phi")
    return names


def covariance_values(model: ModelData, theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """SDs and correlations of the random effects at theta, in theta's layout (NaN for a
    correlation with a zero SD), then the beta-binomial's phi (ModelData.family_values: exp(theta's
    tail), inf at its limit)."""
    values: list[float] = []
    for block, lam in zip(model.blocks, model.lambdas(theta), strict=True):
        sd, corr = sd_correlation(lam @ lam.T)
        for r, c in block.covariance.parameter_entries():
            values.append(float(sd[r]) if r == c else float(corr[r, c]))
    if model.family.n_parameters:
        values.extend(model.family_values(theta).tolist())
    return np.array(values, dtype=np.float64)


def covariance_parameters(result: ResultBase) -> pd.Series:
    """The SDs and correlations of the random effects, named as lme4 names them."""
    values = covariance_values(result.model, result.fit_output.theta)
    return pd.Series(values, index=covariance_parameter_names(result), dtype=np.float64)


def all_parameters(result: ResultBase) -> pd.Series:
    """Covariance parameters then fixed effects, as confint() lists them."""
    return pd.concat([covariance_parameters(result), result.params.rename(None)])


def chosen_parameters(
    names: Sequence[str], is_fixed: Sequence[bool], which: Any, argument: str = "which"
) -> list[str]:
    """The names of `names` that `which` picks (lme4's `which` of profile() and `parm` of
    confint()), in their order: None all; "theta_" the covariance parameters (SDs,
    correlations, phi), "beta_" the fixed effects (`is_fixed` tells which are); else a
    parameter name or a list of names. ValueError naming `argument` otherwise."""
    if which is None:
        return list(names)
    if isinstance(which, str) and which in ("theta_", "beta_"):
        fixed = which == "beta_"
        return [n for n, f in zip(names, is_fixed, strict=True) if f == fixed]
    try:
        wanted = [which] if isinstance(which, str) else list(which)
    except TypeError:
        raise ValueError(
            f"{argument} must be a parameter name, a list of names, 'theta_' or 'beta_', got "
            f"{which!r}"
        ) from None
    unknown = [w for w in wanted if not isinstance(w, str) or w not in names]
    if unknown:
        raise ValueError(
            f"{argument}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(names)}"
        )
    if not wanted:
        raise ValueError(f"{argument} names no parameter; known: {', '.join(names)}")
    return [n for n in names if n in wanted]
