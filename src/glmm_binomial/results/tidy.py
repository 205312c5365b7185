"""Tidy tables of a fit, as R's broom.mixed 0.2.9.4 makes them for a glmer fit: ``tidy`` (one
row per parameter or random effect), ``glance`` (one row of fit statistics) and ``augment``
(the fit's rows with fitted values and residuals). Columns are broom's, with "_" for "."
(std_error, p_value, conf_low, conf_high, df_residual; augment's .fitted, .resid, ...).

tidy's effects:

- "fixed": the fixed effects (link scale), std_error, statistic (the Wald z) and p_value; with
  ``exponentiate=True`` exp(estimate) and its delta-method SE exp(estimate) std_error (the
  odds ratio under the logit link), statistic and p_value unchanged;
- "ran_pars": per grouping factor the random effects' SDs ``sd__<term>`` and correlations
  ``cor__<term1>.<term2>`` (``scales="vcov"``: variances ``var__`` and covariances ``cov__``),
  in lme4's order; no standard error (broom gives none for a glmer fit); the beta-binomial's
  dispersion as effect "dispersion", term "phi";
- "ran_vals": each level's conditional mode and conditional SD (lme4's ranef(condVar = TRUE));
- "ran_coefs": each level's coefficients (lme4's coef()).

``conf_int=True`` adds intervals at ``conf_level`` (default the fit's) by ``conf_method``:
"wald" (the fixed effects, estimate -+ z std_error; NaN for the random-effect parameters, as
broom), "profile" or "boot" (every parameter, GLMMResult.confint; options such as n_boot= and
seed= passed on), or "posterior" (a method="mcmc" fit's equal-tailed credible intervals, its
default; "wald" the default otherwise).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from glmm_binomial.arguments import fraction
from glmm_binomial.numerics import normal
from glmm_binomial.numerics.covariance import sd_correlation
from glmm_binomial.results.base import ResultBase, data_rows, keeps_rows, require_fit
from glmm_binomial.results.intervals import confint
from glmm_binomial.results.parameters import covariance_parameter_names
from glmm_binomial.results.residuals import residuals

__all__ = ["CONF_METHODS", "EFFECTS", "augment", "glance", "tidy"]

EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")
CONF_METHODS = ("wald", "profile", "boot", "posterior")
SCALES = ("sdcor", "vcov")
COLUMNS = [
    "effect",
    "group",
    "level",
    "term",
    "estimate",
    "std_error",
    "statistic",
    "p_value",
    "conf_low",
    "conf_high",
]


def _effects(effects: Any) -> list[str]:
    chosen = [effects] if isinstance(effects, str) else effects
    try:
        chosen = list(chosen)
    except TypeError:
        chosen = [chosen]
    bad = [e for e in chosen if not isinstance(e, str) or e not in EFFECTS]
    if bad or not chosen:
        raise ValueError(
            f"effects must be some of {', '.join(map(repr, EFFECTS))}, got {effects!r}"
        )
    return [e for e in EFFECTS if e in chosen]  # broom's order, whatever the order given


def _fixed_rows(result: ResultBase, level: float, exponentiate: bool) -> pd.DataFrame:
    """The fixed effects' rows from fixed_effects_table (NaN for a coefficient with no finite
    estimate), with the Wald interval estimate -+ z std_error as conf_low and conf_high."""
    table = result.fixed_effects_table(level)
    estimate = table["estimate"].to_numpy(dtype=np.float64)
    se = table["std_error"].to_numpy(dtype=np.float64)
    q = normal.quantile(0.5 + level / 2.0)
    rows = pd.DataFrame(
        {
            "effect": "fixed",
            "group": None,
            "level": None,
            "term": list(table.index),
            "estimate": estimate,
            "std_error": se,
            "statistic": table["z"].to_numpy(dtype=np.float64),
            "p_value": table["p"].to_numpy(dtype=np.float64),
            "conf_low": estimate - q * se,
            "conf_high": estimate + q * se,
        }
    )
    if exponentiate:
        with np.errstate(over="ignore"):
            rows["estimate"] = np.exp(estimate)
            rows["std_error"] = np.exp(estimate) * se
            rows["conf_low"] = np.exp(rows["conf_low"])
            rows["conf_high"] = np.exp(rows["conf_high"])
    return rows


def _covariance_rows(result: ResultBase, scales: str) -> pd.DataFrame:
    """The SDs and correlations (or variances and covariances) per block, lme4's order."""
    model = result.model
    rows: list[dict[str, Any]] = []
    for block, lam in zip(model.blocks, model.lambdas(result.fit_output.theta), strict=True):
        cov = lam @ lam.T
        sd, corr = sd_correlation(cov)
        for r, c in block.covariance.parameter_entries():
            if scales == "sdcor":
                name = f"sd__{block.terms[r]}" if r == c else None
                value = float(sd[r]) if r == c else float(corr[r, c])
            else:
                value = float(cov[r, c])
                name = f"var__{block.terms[r]}" if r == c else None
            if name is None:
                kind = "cor" if scales == "sdcor" else "cov"
                name = f"{kind}__{block.terms[c]}.{block.terms[r]}"
            rows.append(
                {"effect": "ran_pars", "group": block.group, "term": name, "estimate": value}
            )
    phi = result.phi
    if phi is not None:
        rows.append({"effect": "dispersion", "group": None, "term": "phi", "estimate": phi})
    frame = pd.DataFrame(rows, columns=["effect", "group", "term", "estimate"])
    frame.insert(2, "level", None)
    for column in ("std_error", "statistic", "p_value"):
        frame[column] = math.nan
    if phi is not None and result.phi_se is not None:
        frame.loc[frame["term"] == "phi", "std_error"] = result.phi_se
    return frame


def _level_rows(result: ResultBase, effect: str) -> pd.DataFrame:
    """Each level's conditional modes and SDs ("ran_vals") or coefficients ("ran_coefs"),
    term by term, levels in the fit's order."""
    frames = []
    tables = result.ranef(condvar=True) if effect == "ran_vals" else result.coef()
    for group, table in tables.items():
        terms = [t for t in table.columns if not (effect == "ran_vals" and t.endswith("_sd"))]
        for term in terms:
            frame = pd.DataFrame(
                {
                    "effect": effect,
                    "group": group,
                    "level": [str(v) for v in table.index],
                    "term": term,
                    "estimate": table[term].to_numpy(dtype=np.float64),
                }
            )
            frame["std_error"] = (
                table[f"{term}_sd"].to_numpy(dtype=np.float64) if effect == "ran_vals" else math.nan
            )
            frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["statistic"] = math.nan
    out["p_value"] = math.nan
    return out


def _intervals(
    result: ResultBase, table: pd.DataFrame, method: str, level: float, options: dict[str, Any]
) -> pd.DataFrame:
    """``table`` with conf_low and conf_high of the rows the method gives intervals of (the
    fixed effects' Wald intervals are in it already; NaN elsewhere)."""
    fixed = (table["effect"] == "fixed").to_numpy()
    if method == "wald":
        if options:
            raise ValueError(f"conf_method 'wald' takes no options, got {sorted(options)}")
        return table
    intervals = confint(result, method=method, conf_level=level, **options)
    low = np.full(len(table), np.nan)
    high = np.full(len(table), np.nan)
    for i, name in enumerate(_confint_names(result, table)):
        if name is not None and name in intervals.index:
            low[i], high[i] = intervals.loc[name, "lower"], intervals.loc[name, "upper"]
    exponentiated = bool(table.attrs.get("exponentiate"))
    with np.errstate(over="ignore"):
        low[fixed] = np.exp(low[fixed]) if exponentiated else low[fixed]
        high[fixed] = np.exp(high[fixed]) if exponentiated else high[fixed]
    return table.assign(conf_low=low, conf_high=high)


def _confint_names(result: ResultBase, table: pd.DataFrame) -> list[str | None]:
    """confint()'s row name of each row of ``table``: the fixed effects by name, the SDs and
    correlations as lme4 names them (sd_<term>|<group>, cor_<a>.<b>|<group>), phi; None for a
    row confint() has no interval of (a level's random effect, a variance)."""
    covariance = iter(covariance_parameter_names(result))
    names: list[str | None] = []
    for effect, term in zip(table["effect"], table["term"], strict=True):
        if effect == "fixed":
            names.append(str(term))
        elif effect in ("ran_pars", "dispersion"):
            name = next(covariance)
            names.append(name if str(term).startswith(("sd__", "cor__", "phi")) else None)
        else:
            names.append(None)
    return names


def tidy(
    result: Any,
    effects: Any = ("fixed", "ran_pars"),
    scales: str = "sdcor",
    conf_int: bool = False,
    conf_level: float | None = None,
    conf_method: str | None = None,
    exponentiate: bool = False,
    **confint_options: Any,
) -> pd.DataFrame:
    """broom.mixed's tidy(): one row per fixed effect, random-effect parameter, level's random
    effect or level's coefficients (``effects``; module docstring), columns effect, group,
    level, term, estimate, std_error, statistic, p_value (and conf_low, conf_high with
    conf_int). NaN where a number does not exist (no SE of an SD, a correlation, a level's
    coefficient)."""
    result = require_fit(result, "tidy")
    chosen = _effects(effects)
    if scales not in SCALES:
        raise ValueError(f"scales must be 'sdcor' or 'vcov', got {scales!r}")
    for name, flag in (("conf_int", conf_int), ("exponentiate", exponentiate)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    if conf_method is None:  # a sampled posterior's own intervals, else Wald's (broom's)
        conf_method = "posterior" if result.posterior is not None else "wald"
    if conf_method not in CONF_METHODS:
        raise ValueError(
            f"conf_method must be one of {', '.join(map(repr, CONF_METHODS))}, got {conf_method!r}"
        )
    level = result.conf_level if conf_level is None else fraction(conf_level, "conf_level")
    if conf_int and scales == "vcov" and conf_method != "wald" and "ran_pars" in chosen:
        raise ValueError(
            "intervals of variances and covariances are not computed: use scales='sdcor' "
            "(intervals of the SDs and correlations)"
        )
    parts = []
    for effect in chosen:
        if effect == "fixed":
            parts.append(_fixed_rows(result, level, exponentiate))
        elif effect == "ran_pars":
            parts.append(_covariance_rows(result, scales))
        else:
            parts.append(_level_rows(result, effect))
    # Missing columns of a part (the intervals of the random-effect rows) as NaN.
    table = pd.concat(parts, ignore_index=True).reindex(columns=COLUMNS)
    table.attrs["exponentiate"] = exponentiate
    if conf_int:
        table = _intervals(result, table, conf_method, level, confint_options)
    else:
        if confint_options:
            raise ValueError(
                f"options {sorted(confint_options)} apply to intervals: pass conf_int=True"
            )
        table = table.drop(columns=["conf_low", "conf_high"])
    table = table.replace([np.inf, -np.inf], np.nan)  # never an infinite "estimate"
    if not any(e in chosen for e in ("ran_vals", "ran_coefs")):
        table = table.drop(columns="level")
    if chosen == ["fixed"]:
        table = table.drop(columns="group")
    return table


def glance(result: Any) -> pd.DataFrame:
    """broom.mixed's glance(): one row, nobs, logLik, AIC, BIC, deviance, df_residual.
    deviance is broom's (lme4's deviance() of a glmer fit): the sum of the squared deviance
    residuals at the conditional modes, not -2 logLik (result.deviance); NaN for a Dask fit,
    whose rows stay on the cluster. lme4's sigma, 1 for a binomial model, is not an estimate and
    is left out."""
    result = require_fit(result, "glance")
    # A Dask fit keeps no rows (they stay on the cluster): no deviance residuals to sum.
    kept = keeps_rows(result)
    deviance = float(np.sum(residuals(result, "deviance") ** 2)) if kept else math.nan
    return pd.DataFrame(
        {
            "nobs": [result.nobs],
            "logLik": [result.loglik],
            "AIC": [result.aic],
            "BIC": [result.bic],
            "deviance": [deviance],
            "df_residual": [result.df_resid],
        }
    )


def augment(result: Any) -> pd.DataFrame:
    """broom.mixed's augment(): the rows of the data the model was fitted to, with .fitted
    (the linear predictor, random effects at their conditional modes), .resid (deviance
    residuals), .fixed (the linear predictor without the random effects), .mu (the fitted
    probability), .offset and .weights (prior weights: the trials of a proportion or of a
    cbind() response). broom's .hat, .cooksd and working-weight columns are not computed."""
    result = require_fit(result, "augment")
    frame, _ = data_rows(result, "augment", hint="; refit with glmm_binomial.fit(formula, data)")
    model = result.model
    out = frame.copy()
    out[".fitted"] = np.asarray(result.predict(type="link"), dtype=np.float64)
    out[".resid"] = residuals(result, "deviance")
    out[".fixed"] = np.asarray(result.predict(re="exclude", type="link"), dtype=np.float64)
    out[".mu"] = np.asarray(result.predict(type="response"), dtype=np.float64)
    out[".offset"] = np.asarray(model.offset, dtype=np.float64)
    out[".weights"] = np.asarray(model.trials, dtype=np.float64)
    return out
