"""Marginal effects over observed rows: slopes and comparisons of predicted probabilities, as
R's marginaleffects 0.11.0 computes them for a glmer fit (slopes, avg_slopes, comparisons,
avg_comparisons).

Each row of the data (by default the rows the model was fitted to; or ``newdata``) is
predicted twice, with one variable changed, and the two predictions compared:

- a numeric variable's slope ("dY/dX"): (mu(x + h) - mu(x)) / h, marginaleffects' forward
  difference, h = SLOPE_STEP times the variable's range over the fit's rows (``eps=``
  another step);
- a numeric variable's comparison: mu(x + d/2) - mu(x - d/2) for a change d ("+1" by
  default, centred as marginaleffects centres it), or mu(b) - mu(a) with every row at the
  values a < b (a pair, or "minmax": the variable's minimum and maximum over the fit's rows);
- a factor's (or a logical variable's) comparison: every row at one level minus every row at
  another: each level against the first ("reference", the default), each level against the
  one before it ("sequential"), or every pair, later minus earlier ("pairwise": 1 - 0, 2 - 0,
  2 - 1, ...). A factor's
  slope is its comparison (marginaleffects reports factors so in slopes too).

mu is the prediction on the scale ``type``: "response" (the probability, the family's
inverse link; the default) or "link" (the linear predictor). ``re`` says which random effects
the prediction adds (at their conditional modes; as predict's ``re``: "include", the default,
as R's predict for a glmer fit without re.form; "exclude", R's re.form = NA; or a list of
grouping factors). Changing a variable rebuilds the row's whole design, so interactions,
transforms (I(age^2), poly(), scale()) and random slopes in that variable follow it.

The avg_ functions average the rows' estimates (all rows, or within each group of the ``by``
columns of the data); the others give one estimate per row (``row``: the row's label in the
data). Standard errors are by the delta method in the fixed effects only (the random effects
held at their modes, as marginaleffects does): J V J' with V the covariance of beta and J the
derivative of the estimate in beta, exact here, f(eta_hi) x_hi - f(eta_lo) x_lo over the rows
(f = d mu / d eta; marginaleffects takes J by finite differences). z = estimate / SE, two-sided
normal p-values, Wald intervals estimate -/+ z_{1-a/2} SE (df = Inf, as marginaleffects for a
glmer fit). Terms come in alphabetical order, as marginaleffects orders them.

For the Bayesian methods the estimates are at the posterior means of the fixed effects and
random effects, with the posterior covariance of beta (not posterior draws of the effects).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
from numpy.typing import NDArray

from glmm_binomial.arguments import fraction
from glmm_binomial.model.design import DesignInfo, encoded_factor_levels, fit_rows
from glmm_binomial.model.formula import expression_variables
from glmm_binomial.model.frame import ColumnReading, as_pandas, label_key, read_series
from glmm_binomial.model.newdata import new_data_design
from glmm_binomial.numerics import normal
from glmm_binomial.numerics.covariance import row_variances, transform_covariance
from glmm_binomial.results.base import ResultBase
from glmm_binomial.results.prediction import chosen_blocks, linear_predictor

__all__ = [
    "FACTOR_CONTRASTS",
    "SLOPE_STEP",
    "avg_comparisons",
    "avg_slopes",
    "comparisons",
    "slopes",
]

FloatArray = NDArray[np.float64]

SLOPE_STEP = 1e-4
"""A slope's forward-difference step as a fraction of the variable's range over the fit's rows
(marginaleffects' default eps)."""

FACTOR_CONTRASTS = ("reference", "sequential", "pairwise")
TYPES = ("response", "link")


@dataclass(frozen=True)
class _Setting:
    """The rows' data with one variable changed (``frame``), for one side of a contrast."""

    frame: pd.DataFrame
    label: str


@dataclass(frozen=True)
class _Contrast:
    """One estimate per row: term, label, the two settings and the divisor (h for a slope)."""

    term: str
    label: str
    low: int
    high: int
    divisor: float = 1.0


@dataclass(frozen=True)
class _Rows:
    """The rows compared: the data (as pandas) and the offset of its rows when fit() was
    given offset= values (None: none, or taken from the data as the fit took it)."""

    frame: pd.DataFrame
    offset: Any


def _check(result: Any, what: str) -> DesignInfo:
    if not isinstance(result, ResultBase):
        raise ValueError(f"{what} needs a fit (a GLMMResult), got {type(result).__name__}")
    design = result.design
    if design is None:
        raise ValueError(
            f"{what} needs a result fitted from a formula (glmm_binomial.fit): this one was "
            "fitted from arrays, whose columns cannot be changed one variable at a time"
        )
    return design


def _fit_data(result: ResultBase, design: DesignInfo, what: str) -> _Rows:
    """The rows the model was fitted to, from the data fit() was given (kept by the result)."""
    call = result.call
    if call is None:
        raise ValueError(
            f"{what}: this result does not keep the data it was fitted to (made by fit_model, "
            "refit, a Dask fit or unpickled): pass newdata="
        )
    arguments = call.arguments
    rows = fit_rows(
        design.formula,
        call.data,
        arguments.get("weights"),
        arguments.get("offset"),
        arguments.get("subset"),
    )
    kept = np.flatnonzero(rows.complete)
    if len(kept) != result.nobs:
        raise ValueError(
            f"{what}: the data given to fit() now has {len(kept)} complete rows where the fit "
            f"had {result.nobs} (it was changed after the fit): pass newdata="
        )
    offset = (
        rows.offset[kept] if rows.offset_source == "values" and rows.offset is not None else None
    )
    return _Rows(rows.frame.iloc[kept], offset)


def _rows(result: ResultBase, design: DesignInfo, newdata: Any, offset: Any, what: str) -> _Rows:
    if newdata is None:
        if offset is not None:
            raise ValueError("offset applies only with newdata")
        return _fit_data(result, design, what)
    frame = as_pandas(newdata, "newdata")
    if len(frame) == 0:
        raise ValueError("newdata has no rows")
    return _Rows(frame, offset)


def _model_variables(design: DesignInfo) -> list[str]:
    """The variables of the fixed part (offsets excluded), alphabetically."""
    return sorted(expression_variables(design.formula.fixed))


def _variable_specs(variables: Any, design: DesignInfo, comparison: bool) -> dict[str, Any]:
    """``variables`` as {name: spec} (spec None: the default), names checked."""
    fixed = _model_variables(design)
    if variables is None:
        if not fixed:
            raise ValueError("the model's fixed part has no variable to change")
        return dict.fromkeys(fixed)
    if isinstance(variables, str):
        specs: dict[str, Any] = {variables: None}
    elif isinstance(variables, Mapping):
        if not comparison:
            raise ValueError(
                "variables: slopes take variable names (a name or a list of them); give a "
                "change to compare by with comparisons()"
            )
        specs = dict(variables)
    elif isinstance(variables, Sequence) and all(isinstance(v, str) for v in variables):
        if len(set(variables)) != len(variables):
            raise ValueError(f"variables names a variable twice: {list(variables)!r}")
        specs = dict.fromkeys(variables)
    else:
        raise ValueError(
            "variables must be a variable name, a list of them"
            + (" or a dict of name -> change" if comparison else "")
            + f", got {variables!r}"
        )
    if not specs:
        raise ValueError("variables names no variable")
    allowed = set(fixed)
    groups = {g for spec in design.random_specs for g in spec.term.group}
    for name in specs:
        if not isinstance(name, str) or name not in allowed:
            hint = (
                " (a grouping factor: effects are of the fixed part's variables)"
                if name in groups
                else ""
            )
            raise ValueError(
                f"variables: {name!r} is not a variable of the fixed part{hint} (variables: "
                f"{', '.join(sorted(allowed)) or 'none'})"
            )
    return {name: specs[name] for name in sorted(specs)}


def _factor_levels(design: DesignInfo, names: list[str]) -> dict[str, tuple[Any, ...]]:
    """The levels of each of ``names`` the fit treats as a factor (encoded as one, or a text
    or logical column), as emmeans' reference grid finds them."""
    found = encoded_factor_levels(design, names)
    for summary in design.variables:
        if summary.name in names and summary.name not in found and summary.kind == "factor":
            found[summary.name] = summary.levels
    return found


def _reading(design: DesignInfo, name: str) -> ColumnReading | None:
    return next((r for r in design.columns if r.name == name), None)


def _numbers(frame: pd.DataFrame, design: DesignInfo, name: str) -> FloatArray:
    """The column ``name`` of ``frame`` read as numbers, as the fit read it."""
    if name not in frame.columns:
        raise ValueError(f"newdata lacks column {name!r} that the model uses")
    reading = _reading(design, name) or ColumnReading(name, "number")
    return np.asarray(read_series(frame[name], reading, "newdata"), dtype=np.float64)


def _range(result: ResultBase, design: DesignInfo, name: str, rows: _Rows) -> tuple[float, float]:
    """The variable's minimum and maximum over the fit's rows (over ``rows`` when the fit
    kept no summary of it)."""
    for summary in design.variables:
        if summary.name == name and summary.kind == "numeric":
            if math.isfinite(summary.minimum) and math.isfinite(summary.maximum):
                return summary.minimum, summary.maximum
    values = _numbers(rows.frame, design, name)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"variable {name!r} has no value to take its range from")
    return float(values.min()), float(values.max())


def _r_number(value: float) -> str:
    """A number as R's as.character writes it (15 significant digits, no trailing .0)."""
    return label_key(float(value))


def _numeric_settings(
    result: ResultBase,
    design: DesignInfo,
    rows: _Rows,
    name: str,
    spec: Any,
    slope: bool,
    eps: float | None,
    settings: list[_Setting],
) -> list[_Contrast]:
    x = _numbers(rows.frame, design, name)
    if slope:
        if eps is None:
            low, high = _range(result, design, name, rows)
            step = SLOPE_STEP * (high - low)
            if not step > 0.0:
                raise ValueError(
                    f"variable {name!r} takes one value over the fit's rows: its slope needs "
                    "a step, give eps="
                )
        else:
            step = eps
        first = len(settings)
        settings.append(_Setting(rows.frame.assign(**{name: x}), "x"))
        settings.append(_Setting(rows.frame.assign(**{name: x + step}), "x + h"))
        return [_Contrast(name, "dY/dX", first, first + 1, step)]
    change: Any = 1.0 if spec is None else spec
    if isinstance(change, str):
        if change != "minmax":
            raise ValueError(
                f"variables: the change of numeric variable {name!r} must be a number, two "
                f"numbers or 'minmax', got {change!r}"
            )
        low_value, high_value = _range(result, design, name, rows)
        label = "Max - Min"
        low_x, high_x = np.full_like(x, low_value), np.full_like(x, high_value)
    elif np.ndim(change) == 0:
        try:
            d = float(change)
        except (TypeError, ValueError):
            raise ValueError(
                f"variables: the change of {name!r} must be a number, got {change!r}"
            ) from None
        if isinstance(change, bool) or not math.isfinite(d) or d == 0.0:
            raise ValueError(
                f"variables: the change of {name!r} must be a finite non-zero number, got "
                f"{change!r}"
            )
        label = f"+{_r_number(d)}"
        low_x, high_x = x - d / 2.0, x + d / 2.0
    else:
        try:
            pair = sorted(float(v) for v in np.asarray(change, dtype=np.float64).ravel())
        except (TypeError, ValueError):
            pair = []
        if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
            raise ValueError(
                f"variables: the values of {name!r} to compare must be two finite numbers, got "
                f"{change!r}"
            )
        label = f"{_r_number(pair[1])} - {_r_number(pair[0])}"
        low_x, high_x = np.full_like(x, pair[0]), np.full_like(x, pair[1])
    first = len(settings)
    settings.append(_Setting(rows.frame.assign(**{name: low_x}), "low"))
    settings.append(_Setting(rows.frame.assign(**{name: high_x}), "high"))
    return [_Contrast(name, label, first, first + 1)]


def _factor_settings(
    rows: _Rows, name: str, levels: tuple[Any, ...], spec: Any, settings: list[_Setting]
) -> list[_Contrast]:
    kind = "reference" if spec is None else spec
    if not isinstance(kind, str) or kind not in FACTOR_CONTRASTS:
        raise ValueError(
            f"variables: the contrast of factor {name!r} must be one of "
            f"{', '.join(map(repr, FACTOR_CONTRASTS))}, got {spec!r}"
        )
    if len(levels) < 2:
        raise ValueError(f"factor {name!r} has one level in the fit: nothing to compare")
    first = len(settings)
    n = len(rows.frame)
    for level in levels:
        column = np.empty(n, dtype=object)
        column[:] = [level] * n
        settings.append(_Setting(rows.frame.assign(**{name: column}), label_key(level)))
    k = len(levels)
    if kind == "reference":
        pairs = [(0, j) for j in range(1, k)]
    elif kind == "sequential":
        pairs = [(j - 1, j) for j in range(1, k)]
    else:
        pairs = [(i, j) for j in range(1, k) for i in range(j)]  # marginaleffects' order
    return [
        _Contrast(
            name,
            f"{settings[first + j].label} - {settings[first + i].label}",
            first + i,
            first + j,
        )
        for i, j in pairs
    ]


@dataclass(frozen=True)
class _Predicted:
    """mu on the chosen scale, d mu / d eta and X over the rows (NaN where a row lacks a
    value)."""

    mu: FloatArray
    slope: FloatArray
    x: FloatArray


def _predict(
    result: ResultBase,
    design: DesignInfo,
    setting: _Setting,
    offset: Any,
    blocks: tuple[int, ...],
    type: str,
) -> _Predicted:
    new = new_data_design(design, setting.frame, offset, random=blocks)
    eta, _ = linear_predictor(result.fit_output, new.x, new.offset, new.random, new.blocks, False)
    n = new.complete.shape[0]
    family = result.fitted_family
    mu = np.full(n, np.nan)
    slope = np.full(n, np.nan)
    x = np.full((n, new.x.shape[1]), np.nan)
    x[new.complete] = new.x
    if type == "response":
        mu[new.complete] = family.inverse_link(eta)
        slope[new.complete] = family.mu_eta(eta)
    else:
        mu[new.complete] = eta
        slope[new.complete] = 1.0
    return _Predicted(mu, slope, x)


def _groups(frame: pd.DataFrame, by: list[str]) -> tuple[NDArray[np.intp], pd.DataFrame]:
    """Each row's group (-1: a missing ``by`` value) and the groups' values, sorted."""
    missing = [b for b in by if b not in frame.columns]
    if missing:
        raise ValueError(
            f"by: column(s) {', '.join(map(repr, missing))} not in the data "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    keys = frame.loc[:, by].reset_index(drop=True)
    grouped = keys.groupby(by, sort=True, dropna=True, observed=True).ngroup()
    codes = np.asarray(grouped.fillna(-1), dtype=np.intp)
    values = keys.drop_duplicates().dropna()
    values = values.sort_values(by).reset_index(drop=True)
    return codes, values


def _by_names(by: Any) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    if isinstance(by, Sequence) and all(isinstance(b, str) for b in by) and len(by) > 0:
        if len(set(by)) != len(by):
            raise ValueError(f"by names a column twice: {list(by)!r}")
        return list(by)
    raise ValueError(f"by must be a column name or a list of them, got {by!r}")


def _table(
    terms: list[str],
    labels: list[str],
    estimate: FloatArray,
    variance: FloatArray,
    conf_level: float,
    extra: dict[str, Any],
) -> pd.DataFrame:
    se = np.sqrt(np.clip(variance, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = estimate / se
    q = normal.quantile(0.5 + conf_level / 2.0)
    table: dict[str, Any] = {"term": terms, "contrast": labels, **extra}
    table["estimate"] = estimate
    table["std_error"] = se
    table["z"] = z
    table["p_value"] = 2.0 * normal.upper_tail(np.abs(z))
    table["ci_lower"] = estimate - q * se
    table["ci_upper"] = estimate + q * se
    return pd.DataFrame(table)


def _effects(
    result: Any,
    variables: Any,
    newdata: Any,
    by: Any,
    type: str,
    re: Any,
    eps: Any,
    conf_level: float | None,
    offset: Any,
    slope: bool,
    average: bool,
    what: str,
) -> pd.DataFrame:
    design = _check(result, what)
    if type not in TYPES:
        raise ValueError(f"type must be 'response' or 'link', got {type!r}")
    level = result.conf_level if conf_level is None else fraction(conf_level, "conf_level")
    if eps is not None:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0.0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        if not math.isfinite(eps):
            raise ValueError(f"eps must be finite, got {eps!r}")
        eps = float(eps)
    by_names = _by_names(by)
    if by_names and not average:
        raise ValueError(f"by applies to averages: use avg_{what}")
    blocks = chosen_blocks(result.model, re)
    specs = _variable_specs(variables, design, comparison=not slope)
    rows = _rows(result, design, newdata, offset, what)
    factors = _factor_levels(design, list(specs))
    settings: list[_Setting] = []
    contrasts: list[_Contrast] = []
    for name, spec in specs.items():
        if name in factors:
            contrasts += _factor_settings(rows, name, factors[name], spec, settings)
        else:
            contrasts += _numeric_settings(result, design, rows, name, spec, slope, eps, settings)
    predicted = [_predict(result, design, s, rows.offset, blocks, type) for s in settings]
    vcov = np.asarray(result.fit_output.vcov_beta, dtype=np.float64)
    n = len(rows.frame)
    if average:
        codes = np.zeros(n, dtype=np.intp)
        group_values = pd.DataFrame(index=pd.RangeIndex(1))
        if by_names:
            codes, group_values = _groups(rows.frame, by_names)
        n_groups = len(group_values)
    estimates: list[FloatArray] = []
    variances: list[FloatArray] = []
    for contrast in contrasts:
        lo, hi = predicted[contrast.low], predicted[contrast.high]
        unit = (hi.mu - lo.mu) / contrast.divisor
        jacobian = (hi.slope[:, None] * hi.x - lo.slope[:, None] * lo.x) / contrast.divisor
        if not average:
            estimates.append(unit)
            variances.append(row_variances(jacobian, vcov))
            continue
        use = np.isfinite(unit) & (codes >= 0)
        members = scipy.sparse.csr_matrix(
            (np.ones(int(use.sum())), (codes[use], np.flatnonzero(use))), shape=(n_groups, n)
        )
        counts = np.asarray(members.sum(axis=1)).ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = (members @ np.where(use, unit, 0.0)) / counts
            mean_jacobian = (members @ np.where(use[:, None], jacobian, 0.0)) / counts[:, None]
        estimates.append(np.asarray(mean, dtype=np.float64))
        variances.append(np.diag(transform_covariance(mean_jacobian, vcov)))
    if average:
        size = n_groups
        extra: dict[str, Any] = {
            b: np.tile(group_values[b].to_numpy(), len(contrasts)) for b in by_names
        }
    else:
        size = n
        extra = {"row": np.tile(rows.frame.index.to_numpy(), len(contrasts))}
    terms = [c.term for c in contrasts for _ in range(size)]
    labels = [c.label for c in contrasts for _ in range(size)]
    table = _table(
        terms,
        labels,
        np.concatenate(estimates),
        np.concatenate(variances),
        level,
        extra,
    )
    table.attrs.update({"type": type, "level": level, "notes": _notes(result, type, blocks)})
    return table


def _notes(result: ResultBase, type: str, blocks: tuple[int, ...]) -> tuple[str, ...]:
    scale = "probability" if type == "response" else "link (linear predictor)"
    random = (
        "random effects at their conditional modes" if blocks else "random effects excluded (zero)"
    )
    notes = [f"Effects on the {scale} scale, {random}; delta-method SEs in the fixed effects."]
    method = result.method_object
    if method.posterior:
        notes.append(
            f"Method {result.method!r}: at the posterior means, with the posterior covariance "
            "of the fixed effects."
        )
    return tuple(notes)


def slopes(
    result: Any,
    variables: Any = None,
    newdata: Any = None,
    type: str = "response",
    re: Any = "include",
    eps: float | None = None,
    conf_level: float | None = None,
    offset: Any = None,
) -> pd.DataFrame:
    """The slope of each row's prediction in each numeric variable (and each factor's
    comparisons), one row of the table per data row and contrast (marginaleffects' slopes;
    module docstring). variables: a name or a list of names (None: every variable of the
    fixed part); newdata: the rows (None: those the model was fitted to); type "response"
    (probability) or "link"; re as predict's; eps: the step of the forward difference (None:
    SLOPE_STEP times the variable's range); conf_level: of the intervals (None: the fit's);
    offset: the offset of newdata's rows when the model was fitted with offset= values.

    Columns: term, contrast, row (the row's label in the data), estimate, std_error, z,
    p_value, ci_lower, ci_upper."""
    return _effects(
        result, variables, newdata, None, type, re, eps, conf_level, offset, True, False, "slopes"
    )


def avg_slopes(
    result: Any,
    variables: Any = None,
    newdata: Any = None,
    by: Any = None,
    type: str = "response",
    re: Any = "include",
    eps: float | None = None,
    conf_level: float | None = None,
    offset: Any = None,
) -> pd.DataFrame:
    """Average marginal effects: each row's slope (slopes()) averaged over the rows, or over
    the rows of each group of the ``by`` columns of the data (marginaleffects' avg_slopes).
    Columns: term, contrast, the by columns, estimate, std_error, z, p_value, ci_lower,
    ci_upper; ``attrs["notes"]`` say the scale and how the SEs were made."""
    return _effects(
        result, variables, newdata, by, type, re, eps, conf_level, offset, True, True, "slopes"
    )


def comparisons(
    result: Any,
    variables: Any = None,
    newdata: Any = None,
    type: str = "response",
    re: Any = "include",
    conf_level: float | None = None,
    offset: Any = None,
) -> pd.DataFrame:
    """Each row's difference in prediction when one variable changes (marginaleffects'
    comparisons; module docstring), one row of the table per data row and contrast.
    variables: a name, a list of names or a dict name -> change: for a numeric variable a
    number d (x + d/2 against x - d/2; default 1), two numbers (every row at each) or
    "minmax"; for a factor "reference" (default), "sequential" or "pairwise". Other
    arguments and columns as slopes()."""
    return _effects(
        result,
        variables,
        newdata,
        None,
        type,
        re,
        None,
        conf_level,
        offset,
        False,
        False,
        "comparisons",
    )


def avg_comparisons(
    result: Any,
    variables: Any = None,
    newdata: Any = None,
    by: Any = None,
    type: str = "response",
    re: Any = "include",
    conf_level: float | None = None,
    offset: Any = None,
) -> pd.DataFrame:
    """comparisons() averaged over the rows, or within each group of the ``by`` columns
    (marginaleffects' avg_comparisons): e.g. the average difference in probability between
    urban and rural women, every woman's own covariates kept. Columns as avg_slopes()."""
    return _effects(
        result,
        variables,
        newdata,
        by,
        type,
        re,
        None,
        conf_level,
        offset,
        False,
        True,
        "comparisons",
    )
