"""The numbers of a fit's tables, without pandas: what ResultBase puts in its DataFrames and the
spreadsheet front end reads as they are (a spreadsheet call then loads neither pandas nor
scipy.stats nor scipy.special: the normal quantiles and tails come from the standard library,
numerics.normal).

    Wald statistics: z = estimate / SE, p = 2 P(Z > |z|), interval estimate -+ q SE with
    q = Phi^{-1}(1/2 + conf_level/2), odds ratio exp(estimate);
    variance components: per random-effect column, its variance and SD from Lambda Lambda',
    and its correlations with the block's earlier columns;
    criteria: deviance = -2 loglik, AIC = deviance + 2 df, BIC = deviance + log(n) df, with
    df the fixed effects plus the covariance parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics import normal
from glmm_binomial.numerics.covariance import sd_correlation

FloatArray = NDArray[np.float64]


def wald_statistics(
    estimate: FloatArray, vcov: FloatArray, conf_level: float, odds_ratios: bool = True
) -> dict[str, FloatArray]:
    """Columns estimate, std_error, z, p (two-sided, normal), ci_lower, ci_upper (Wald, at
    conf_level) and odds_ratio of the fixed effects; NaN where there is no standard error, and
    odds ratios NaN unless odds_ratios (exp(beta) is one under the logit link only)."""
    se = np.sqrt(np.diag(vcov))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = estimate / se
    p = 2.0 * normal.upper_tail(np.abs(z))
    q = normal.quantile(0.5 + conf_level / 2.0)
    with np.errstate(over="ignore"):  # a diverging (separated) estimate: odds ratio inf
        odds_ratio = np.exp(estimate) if odds_ratios else np.full(len(estimate), np.nan)
    return {
        "estimate": estimate,
        "std_error": se,
        "z": z,
        "p": p,
        "ci_lower": estimate - q * se,
        "ci_upper": estimate + q * se,
        "odds_ratio": odds_ratio,
    }


def normal_quantile(upper_tail: float) -> float:
    """q with P(Z > q) = upper_tail for a standard normal Z (scipy.stats.norm.isf)."""
    return -normal.quantile(upper_tail)


@dataclass(frozen=True)
class VarianceComponent:
    """One random-effect column: its grouping factor, term, variance and SD, and its
    correlations with the earlier columns of the same block (NaN where an SD is zero)."""

    group: str
    term: str
    variance: float
    std_dev: float
    correlations: tuple[float, ...]


def variance_components(model: ModelData, theta: FloatArray) -> list[VarianceComponent]:
    """The variance components of every block in ModelData order, at theta."""
    out = []
    for block, lam in zip(model.blocks, model.lambdas(theta), strict=True):
        cov = lam @ lam.T
        sd, corr = sd_correlation(cov)
        for c, term in enumerate(block.terms):
            out.append(
                VarianceComponent(
                    block.group,
                    term,
                    float(cov[c, c]),
                    float(sd[c]),
                    tuple(float(v) for v in corr[c, :c]),
                )
            )
    return out


def information_criteria(loglik: float, df: int, nobs: int) -> tuple[float, float, float]:
    """deviance, AIC and BIC of a log-likelihood with df parameters on nobs rows."""
    deviance = -2.0 * loglik
    return deviance, deviance + 2.0 * df, float(deviance + np.log(nobs) * df)
