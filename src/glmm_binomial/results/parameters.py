"""Every parameter of a fit as lme4 names and orders them: per block the SDs and correlations
(`sd_<term>|<group>`, `cor_<a>.<b>|<group>`, in theta's layout), then the beta-binomial's
dispersion `phi`, then the fixed effects.

The rows of confint() and the columns of the bootstrap's replicates.
"""

from __future__ import annotations

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
