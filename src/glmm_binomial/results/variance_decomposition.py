"""Variance decomposition of a binomial GLMM on the link scale: Nakagawa's R2 and the ICC.

As performance 0.10.2 computes them (r2_nakagawa, icc) from insight 0.19.0's get_variance
(Nakagawa & Schielzeth 2013; Johnson 2014; Nakagawa, Johnson & Schielzeth 2017):

- fixed = var(X beta) over the fit's rows (sample variance, n - 1; the offset not included);
- random = sum over random-effect terms of the mean over rows of z_i' Sigma z_i, where z_i
  holds the row's values of the term's columns taken from the fixed-effects design X (the
  intercept is 1; a term column absent from X is left out, as insight does, with a note) and
  Sigma is the term's covariance: the term's variance for (1 | g), the row-averaged variance of
  the random part of eta with random slopes. Terms with as many levels as rows
  (observation-level effects) count as dispersion instead;
- distribution = the latent variance of the link: pi^2/3 for the logit ("theoretical"), or
  the observation-level variance 1/(p (1 - p)) of the delta method ("delta", Nakagawa et al.
  2017, as MuMIn's r.squaredGLMM and later insight versions compute it), where p is the mean
  probability of the null model ``1 + (random terms)``:
  p = expit(b0 - 0.5 s tanh(b0 (1 + 2 exp(-0.5 s)) / 6)), b0 its intercept and s its random
  intercept variance; the null model is fitted here by the Laplace approximation;
- residual = distribution + dispersion.

Then R2 marginal = fixed / (fixed + random + residual), R2 conditional = (fixed + random) /
(fixed + random + residual), ICC adjusted = random / (random + residual) and ICC unadjusted =
random / (fixed + random + residual). A singular fit (a diagonal entry of a relative covariance
factor below ``tolerance``, insight's check) has no random variance: R2 marginal is then
fixed / (fixed + residual) and R2 conditional and the ICCs are NaN, as performance returns NA.

For variational-Bayes fits everything is computed at the posterior means of beta and of the
covariance parameters (the output says so).

One difference from insight 0.19.0: for an uncorrelated term ``(1 + x || g)`` (lme4's terms g
and g.1) insight's var.random is the intercept's variance alone, the slope's variance (which it
reports in var.slope) left out; here the term's random variance is the mean of z' Sigma z over
the rows, the slope's included, as for ``(0 + x | g)`` or a correlated term, which insight
counts in full (bench/against_r_r2.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.arguments import non_negative
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.validation import block_text

if TYPE_CHECKING:
    from glmm_binomial.results.result import GLMMResult

__all__ = [
    "APPROXIMATIONS",
    "ICC",
    "R2",
    "SINGULAR_TOLERANCE",
    "VarianceComponents",
    "get_variance",
    "icc",
    "r2_nakagawa",
    "random_variance",
    "variance_components",
]

FloatArray = NDArray[np.float64]

SINGULAR_TOLERANCE = 1e-5
"""A diagonal entry of a relative covariance factor below this makes the fit singular for R2
and ICC (insight's tolerance, applied to lme4's theta)."""

APPROXIMATIONS = ("theoretical", "delta")


@dataclass(frozen=True)
class VarianceComponents:
    """Variances on the link scale (insight::get_variance's var.fixed, var.random, ...).

    ``intercept`` holds each term's random-intercept variance and ``slope`` each random slope
    variance (keyed ``group.term``), as insight's var.intercept and var.slope."""

    fixed: float
    random: float
    distribution: float
    dispersion: float
    intercept: dict[str, float] = field(default_factory=dict)
    slope: dict[str, float] = field(default_factory=dict)
    approximation: str = "theoretical"
    singular: bool = False
    notes: tuple[str, ...] = ()

    @property
    def residual(self) -> float:
        """distribution + dispersion."""
        return self.distribution + self.dispersion


@dataclass(frozen=True)
class R2:
    """Nakagawa's marginal and conditional R2, with the variances behind them."""

    marginal: float
    conditional: float
    components: VarianceComponents
    notes: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> float:
        if key not in ("marginal", "conditional"):
            raise KeyError(key)
        return float(getattr(self, key))

    def to_dict(self) -> dict[str, float]:
        return {"marginal": self.marginal, "conditional": self.conditional}


@dataclass(frozen=True)
class ICC:
    """Adjusted and unadjusted intraclass correlation, with the variances behind them."""

    adjusted: float
    unadjusted: float
    components: VarianceComponents
    notes: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> float:
        if key not in ("adjusted", "unadjusted"):
            raise KeyError(key)
        return float(getattr(self, key))

    def to_dict(self) -> dict[str, float]:
        return {"adjusted": self.adjusted, "unadjusted": self.unadjusted}


def _rows_design(model: ModelData, nobs: int) -> FloatArray:
    if model.x.shape[0] != nobs:
        raise ValueError(
            "R2 and ICC need the rows of the fit, which stay on the Dask cluster; fit the "
            "computed frame in memory (glmm_binomial.fit(formula, ddf.compute())) for them"
        )
    return model.x


def random_variance(
    model: ModelData, covariances: list[FloatArray], observation_level: bool = False
) -> tuple[float, tuple[str, ...]]:
    """Sum over terms of mean_i z_i' Sigma z_i with z_i from the fixed-effects design (see the
    module docstring); observation_level selects the terms with as many levels as rows
    instead of the others. Returns the variance and notes on term columns left out."""
    x = model.x
    names = list(model.fixed_names)
    n = x.shape[0]
    total = 0.0
    notes: list[str] = []
    for block, sigma in zip(model.blocks, covariances, strict=True):
        if (block.n_levels == n) != observation_level:
            continue
        columns: list[FloatArray] = []
        keep: list[int] = []
        for c, term in enumerate(block.terms):
            if term in names:
                columns.append(x[:, names.index(term)])
            elif term == "(Intercept)":
                columns.append(np.ones(n))  # insight adds the intercept X lacks
            else:
                notes.append(
                    f"random slope '{term}' of '{block.group}' is not a fixed-effect column: "
                    "left out of the random variance (insight does the same)"
                )
                continue
            keep.append(c)
        if not keep:
            continue
        z = np.column_stack(columns)
        s = sigma[np.ix_(keep, keep)]
        total += float(np.einsum("ic,cd,id->", z, s, z)) / n
    return total, tuple(notes)


def _is_singular(model: ModelData, theta: FloatArray, tolerance: float) -> bool:
    diagonal = np.isfinite(model.theta_lower_bounds())
    return bool(np.any(np.abs(theta[diagonal]) < tolerance))


def _intercepts_and_slopes(
    model: ModelData, covariances: list[FloatArray]
) -> tuple[dict[str, float], dict[str, float]]:
    intercept: dict[str, float] = {}
    slope: dict[str, float] = {}
    for block, sigma in zip(model.blocks, covariances, strict=True):
        for c, term in enumerate(block.terms):
            if term == "(Intercept)":
                intercept[block.group] = float(sigma[c, c])
            else:
                slope[f"{block.group}.{term}"] = float(sigma[c, c])
    return intercept, slope


def _delta_distribution_variance(model: ModelData) -> tuple[float, str]:
    """1 / (p (1 - p)) with p the mean probability of the null model (module docstring)."""
    from glmm_binomial.methods.laplace import fit_laplace  # noqa: PLC0415 - only the delta option fits

    null = replace(model, x=np.ones((model.n_obs, 1)), fixed_names=("(Intercept)",))
    output = fit_laplace(null)
    if output.separation.coefficients or output.separation.blocks:
        raise ValueError(
            "approximation='delta' needs the null model (the intercept and the random "
            "effects), which has no finite maximum-likelihood estimate here (separation): use "
            "approximation='theoretical'"
        )
    b0 = float(output.beta[0])
    covariances = [lam @ lam.T for lam in null.lambdas(output.theta)]
    s, _ = random_variance(null, covariances)
    p = float(1.0 / (1.0 + np.exp(-(b0 - 0.5 * s * np.tanh(b0 * (1 + 2 * np.exp(-0.5 * s)) / 6)))))
    note = (
        f"delta-method distribution variance 1/(p(1-p)) with p = {p:.6g} from the null model "
        f"(intercept {b0:.6g}, random intercept variance {s:.6g}, Laplace fit)"
    )
    if not 0.0 < p < 1.0:
        raise ValueError(
            "approximation='delta' needs the null model's mean probability, which rounds to "
            f"{p:g} (its intercept {b0:.6g}, random-intercept variance {s:.6g}): use "
            "approximation='theoretical'"
        )
    return 1.0 / (p * (1.0 - p)), note


def variance_components(
    model: ModelData,
    beta: FloatArray,
    covariances: list[FloatArray],
    singular: bool = False,
    distribution: float = float(np.pi**2 / 3.0),
) -> VarianceComponents:
    """The variance components at given estimates (beta, each term's covariance Sigma) on the
    model's rows, with a given distribution-specific variance (pi^2/3 for the logit); the
    mathematics of get_variance without a result (module docstring)."""
    x = _rows_design(model, model.n_obs)
    eta_fixed = x @ np.asarray(beta, dtype=np.float64)
    fixed = float(np.var(eta_fixed, ddof=1)) if len(eta_fixed) > 1 else float("nan")
    notes: list[str] = []
    if singular:
        random = float("nan")
        notes.append(
            "singular fit (a random-effect variance is estimated at zero): no random variance, "
            "as performance returns NA"
        )
    else:
        random, left_out = random_variance(model, covariances)
        notes.extend(left_out)
    dispersion, _ = random_variance(model, covariances, observation_level=True)
    intercept, slope = _intercepts_and_slopes(model, covariances)
    return VarianceComponents(
        fixed=fixed,
        random=random,
        distribution=float(distribution),
        dispersion=float(dispersion),
        intercept=intercept,
        slope=slope,
        singular=singular,
        notes=tuple(notes),
    )


def get_variance(
    result: GLMMResult, approximation: str = "theoretical", tolerance: float = SINGULAR_TOLERANCE
) -> VarianceComponents:
    """The variance components of a fit on the link scale (insight::get_variance; see the
    module docstring)."""
    if approximation not in APPROXIMATIONS:
        if approximation in ("lognormal", "trigamma"):
            raise ValueError(
                f"approximation={approximation!r} is defined for log links (count models, "
                "Nakagawa et al. 2017); for the binomial logit use 'theoretical' (pi^2/3) "
                "or 'delta'"
            )
        raise ValueError(
            f"approximation must be one of {', '.join(map(repr, APPROXIMATIONS))}, "
            f"got {approximation!r}"
        )
    tolerance = non_negative(tolerance, "tolerance")
    model = result.model
    _rows_design(model, result.nobs)
    notes: list[str] = []
    if result.method_object.posterior:
        notes.append("computed at the posterior means of beta and the covariance parameters")
    separation = result.fit_output.separation
    if not result.method_object.posterior and (separation.coefficients or separation.blocks):
        # The variances would be those of points on a diverging path (R2 and the ICC then
        # run to 0 or 1 as the search goes on), not estimates.
        parts = [*result.diverging, *(block_text(model.blocks[b]) for b in separation.blocks)]
        raise ValueError(
            "R2 and the ICC need finite estimates; the fit has none for "
            f"{', '.join(parts)} (separation; see its warning): refit with priors (a posterior "
            "mode) or method='vb'"
        )
    family = result.model.family
    if not np.isfinite(family.latent_variance):
        raise ValueError(
            f"R2 and the ICC need the latent variance of the link's error distribution, which "
            f"performance defines for the binomial logit, probit and cloglog links only, not "
            f"family {family.name!r} with link {family.link!r}"
        )
    if approximation == "theoretical":
        distribution = family.latent_variance
    else:
        if family.link != "logit":
            raise ValueError("approximation='delta' is implemented for the logit link only")
        distribution, note = _delta_distribution_variance(model)
        notes.append(note)
    v = variance_components(
        model,
        np.asarray(result.params, dtype=np.float64),
        result.covariance_matrices(),
        singular=_is_singular(model, np.asarray(result.theta), tolerance),
        distribution=distribution,
    )
    return replace(v, approximation=approximation, notes=tuple(notes) + v.notes)


def r2_nakagawa(
    result: GLMMResult, approximation: str = "theoretical", tolerance: float = SINGULAR_TOLERANCE
) -> R2:
    """Marginal (fixed effects) and conditional (fixed and random effects) R2 of Nakagawa &
    Schielzeth (2013), Nakagawa et al. (2017), as performance::r2_nakagawa 0.10.2 computes
    them (see the module docstring); approximation "theoretical" (pi^2/3, performance's) or
    "delta"."""
    v = get_variance(result, approximation, tolerance)
    if np.isnan(v.random):
        marginal = v.fixed / (v.fixed + v.residual)
        return R2(marginal, float("nan"), v, v.notes)
    total = v.fixed + v.random + v.residual
    return R2(v.fixed / total, (v.fixed + v.random) / total, v, v.notes)


def icc(
    result: GLMMResult, tolerance: float = SINGULAR_TOLERANCE, by_group: bool = False
) -> ICC | pd.DataFrame:
    """Adjusted ICC random / (random + residual) and unadjusted ICC random / (fixed + random +
    residual), as performance::icc 0.10.2 computes them (module docstring); NaN for a
    singular fit.

    by_group=True (performance's by_group): a DataFrame with one row per grouping factor,
    columns group and icc, its random-intercept variance over the sum of every factor's plus
    the residual variance (for crossed or nested intercepts, e.g. subjects and items);
    intercept-only random terms only (a ValueError otherwise: with random slopes a factor's
    share depends on the covariates)."""
    if not isinstance(by_group, bool | np.bool_):
        raise ValueError(f"by_group must be True or False, got {by_group!r}")
    v = get_variance(result, "theoretical", tolerance)
    if by_group:
        if v.slope or any(block.k > 1 for block in result.model.blocks):
            raise ValueError(
                "icc by_group needs random intercepts only, such as (1 | id) + (1 | item): "
                "with random slopes a grouping factor's share of the variance depends on the "
                "covariates"
            )
        total = sum(v.intercept.values()) + v.residual
        values = [np.nan if v.singular else value / total for value in v.intercept.values()]
        return pd.DataFrame({"group": list(v.intercept), "icc": values})
    adjusted = v.random / (v.random + v.residual)
    unadjusted = v.random / (v.fixed + v.random + v.residual)
    return ICC(float(adjusted), float(unadjusted), v, v.notes)
