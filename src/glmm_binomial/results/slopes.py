"""Marginal effects over observed rows: slopes and comparisons of predicted probabilities and
average predictions, as R's marginaleffects 0.11.0 computes them for a glmer fit (slopes,
avg_slopes, comparisons, avg_comparisons, avg_predictions).

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
  2 - 1, ...). A factor's slope is its comparison (marginaleffects reports factors so in
  slopes too).

The two predictions hi and lo of a row are compared by their difference (the default), or by
``comparison=`` "ratio", "lnratio" or "lnor" (the log odds ratio), or, in avg_comparisons, by
the function of their averages ("ratioavg": mean(hi) / mean(lo), the risk ratio, ...); a slope
may be an elasticity (``slope=`` "eyex", "eydx", "dyex": (d mu / dx) x / mu, ... with mu the
row's own prediction). avg_predictions averages the rows' predictions themselves, optionally
with every row set to each value of some variables (standardization).

mu is the prediction on the scale ``type``: "response" (the probability, the family's
inverse link; the default) or "link" (the linear predictor). ``re`` says which random effects
the prediction adds (at their conditional modes; as predict's ``re``: "include", the default,
as R's predict for a glmer fit without re.form; "exclude", R's re.form = NA; or a list of
grouping factors). Changing a variable rebuilds the row's whole design, so interactions,
transforms (I(age^2), poly(), scale()) and random slopes in that variable follow it.

The avg_ functions average the rows' estimates (all rows, or within each group of the ``by``
columns of the data; weighted by ``wts=``, marginaleffects' wts); the others give one estimate
per row (``row``: the row's label in the data). Standard errors are by the delta method in the
fixed effects only (the random effects held at their modes, as marginaleffects does): J V J'
with V the covariance of beta and J the derivative of the estimate in beta, exact here: for a
row, c_hi f(eta_hi) x_hi + c_lo f(eta_lo) x_lo with c_hi, c_lo the comparison's derivatives in
hi and lo (1 and -1 for a difference) and f = d mu / d eta, averaged as the estimate is
(marginaleffects takes J by finite differences). z = estimate / SE, two-sided normal p-values,
Wald intervals estimate -/+ z_{1-a/2} SE (df = Inf, as marginaleffects for a glmer fit). Terms
come in alphabetical order, as marginaleffects orders them. ``hypothesis=`` replaces the
estimates by functions of them (differences of pairs, equations, weights) with their exact
Jacobian, or sets the null value of the tests (results.hypothesis); rows to predict at are
made by results.datagrid.

For the Bayesian methods the estimates are at the posterior means of the fixed effects and
random effects, with the posterior covariance of beta (not posterior draws of the effects).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
from numpy.typing import NDArray

from glmm_binomial.arguments import fraction
from glmm_binomial.model.design import DesignInfo, encoded_factor_levels
from glmm_binomial.model.formula import expression_variables
from glmm_binomial.model.frame import (
    ColumnReading,
    as_pandas,
    label_key,
    read_series,
    row_values,
)
from glmm_binomial.model.newdata import new_data_design
from glmm_binomial.numerics.covariance import row_variances
from glmm_binomial.results.base import ResultBase, data_rows, require_fit
from glmm_binomial.results.datagrid import fivenum, model_variables, summary_rows
from glmm_binomial.results.hypothesis import (
    HYPOTHESIS_KEYWORDS,
    Tests,
    apply_hypothesis,
    equivalence_tests,
    null_value,
)
from glmm_binomial.results.multiplicity import p_adjust as adjusted_p_values
from glmm_binomial.results.prediction import chosen_blocks, linear_predictor

__all__ = [
    "COMPARISONS",
    "FACTOR_CONTRASTS",
    "SLOPE_KINDS",
    "SLOPE_STEP",
    "avg_comparisons",
    "avg_predictions",
    "avg_slopes",
    "comparisons",
    "hypotheses",
    "predictions",
    "slopes",
]

FloatArray = NDArray[np.float64]

NO_TESTS = Tests()

SLOPE_STEP = 1e-4
"""A slope's forward-difference step as a fraction of the variable's range over the fit's rows
(marginaleffects' default eps)."""

FACTOR_CONTRASTS = ("reference", "sequential", "pairwise")
TYPES = ("response", "link")
NUMERIC_CHANGES = ("minmax", "iqr", "sd", "2sd")
"""marginaleffects' named changes of a numeric variable, every row at the two values: its
minimum and maximum, first and third quartiles (R's type 7), the mean -/+ half a standard
deviation, the mean -/+ one; over the fit's rows."""

COMPARISONS = {
    "difference": "%s - %s",
    "ratio": "%s / %s",
    "lnratio": "ln(%s / %s)",
    "lnor": "ln(odds(%s) / odds(%s))",
    "differenceavg": "mean(%s) - mean(%s)",
    "ratioavg": "mean(%s) / mean(%s)",
    "lnratioavg": "ln(mean(%s) / mean(%s))",
    "lnoravg": "ln(odds(%s) / odds(%s))",
}
"""marginaleffects' comparison functions of the two predictions hi and lo and their labels:
hi - lo, hi / lo, log(hi / lo), the log odds ratio; the "avg" forms apply the function to the
averages of hi and lo (avg_comparisons only), the others are averaged row by row."""

SLOPE_KINDS = {"dydx": "dY/dX", "eyex": "eY/eX", "eydx": "eY/dX", "dyex": "dY/eX"}
"""marginaleffects' slopes and elasticities: d mu / dx, (d mu / dx) x / mu, (d mu / dx) / mu
and (d mu / dx) x, mu the row's prediction at its own value of x."""


@dataclass(frozen=True)
class _Setting:
    """The rows' data with one variable changed (``frame``), for one side of a contrast."""

    frame: pd.DataFrame
    label: str


@dataclass(frozen=True)
class _Contrast:
    """One estimate per row: term, label, the two settings, the function comparing their
    predictions (COMPARISONS or SLOPE_KINDS), the step h of a slope and the variable's values
    (for elasticities)."""

    term: str
    label: str
    low: int
    high: int
    function: str = "difference"
    step: float = 1.0
    x: FloatArray | None = None


@dataclass(frozen=True)
class _Rows:
    """The rows compared: the data (as pandas), the offset of its rows when fit() was given
    offset= values (None: none, or taken from the data as the fit took it) and the weights of
    the averages (None: equal)."""

    frame: pd.DataFrame
    offset: FloatArray | None
    weights: FloatArray | None = None
    fitted: bool = False  # the rows are those the model was fitted to


def _check(result: Any, what: str) -> DesignInfo:
    design = require_fit(result, what).design
    if design is None:
        raise ValueError(
            f"{what} needs a result fitted from a formula (glmm_binomial.fit): this one was "
            "fitted from arrays, whose columns cannot be changed one variable at a time"
        )
    return design


def _rows(
    result: ResultBase, design: DesignInfo, newdata: Any, offset: Any, what: str, by: list[str]
) -> _Rows:
    if isinstance(newdata, str):  # a summary row ("mean": the marginal effect at the mean)
        newdata = summary_rows(result, newdata, by)
    if newdata is None:
        if offset is not None:
            raise ValueError("offset applies only with newdata")
        frame, values = data_rows(result, what)
        return _Rows(frame, values, fitted=True)
    frame = as_pandas(newdata, "newdata")
    if len(frame) == 0:
        raise ValueError("newdata has no rows")
    index = frame.index if isinstance(newdata, pd.DataFrame) else None
    return _Rows(frame, row_values("offset", offset, len(frame), index))


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


def _spread_values(result: ResultBase, design: DesignInfo, rows: _Rows, name: str) -> FloatArray:
    """The variable's values over the fit's rows (over ``rows`` when the result keeps no
    data), missing ones left out: what "sd" and "iqr" changes are measured on."""
    frame = rows.frame
    if not rows.fitted:
        try:
            frame = data_rows(result, "comparisons")[0]
        except ValueError:
            pass  # a result without its data: newdata's rows
    values = _numbers(frame, design, name)
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise ValueError(f"variable {name!r} has fewer than two values to take its spread from")
    return values


def _r_number(value: float) -> str:
    """A number as R's as.character writes it (15 significant digits, no trailing .0)."""
    return label_key(float(value))


def _slope_step(
    result: ResultBase, design: DesignInfo, rows: _Rows, name: str, eps: float | None
) -> float:
    if eps is not None:
        return eps
    low, high = _range(result, design, name, rows)
    step = SLOPE_STEP * (high - low)
    if not step > 0.0:
        raise ValueError(
            f"variable {name!r} takes one value over the fit's rows: its slope needs a step, "
            "give eps="
        )
    return step


def _numeric_settings(
    result: ResultBase,
    design: DesignInfo,
    rows: _Rows,
    name: str,
    spec: Any,
    function: str,
    eps: float | None,
    settings: list[_Setting],
) -> list[_Contrast]:
    x = _numbers(rows.frame, design, name)
    first = len(settings)
    if function in SLOPE_KINDS:
        step = _slope_step(result, design, rows, name, eps)
        settings.append(_Setting(rows.frame.assign(**{name: x}), "x"))
        settings.append(_Setting(rows.frame.assign(**{name: x + step}), "x + h"))
        return [_Contrast(name, SLOPE_KINDS[function], first, first + 1, function, step, x)]
    template = COMPARISONS[function]
    change: Any = 1.0 if spec is None else spec
    if callable(change):
        low_x, high_x = _custom_change(change, x, name)
        settings.append(_Setting(rows.frame.assign(**{name: low_x}), "low"))
        settings.append(_Setting(rows.frame.assign(**{name: high_x}), "high"))
        return [_Contrast(name, "custom", first, first + 1, function)]
    if isinstance(change, str):
        if change not in NUMERIC_CHANGES:
            raise ValueError(
                f"variables: the change of numeric variable {name!r} must be a number, two "
                f"numbers or one of {', '.join(map(repr, NUMERIC_CHANGES))}, got {change!r}"
            )
        if change == "minmax":
            low_value, high_value = _range(result, design, name, rows)
            label = template % ("Max", "Min")
        elif change == "iqr":
            values = _spread_values(result, design, rows, name)
            low_value, high_value = (float(v) for v in np.quantile(values, [0.25, 0.75]))
            label = template % ("Q3", "Q1")
        else:  # "sd", "2sd": about the mean
            values = _spread_values(result, design, rows, name)
            half = float(np.std(values, ddof=1)) / (2.0 if change == "sd" else 1.0)
            centre = float(np.mean(values))
            low_value, high_value = centre - half, centre + half
            sides = ("x + sd/2", "x - sd/2") if change == "sd" else ("x + sd", "x - sd")
            if "mean" not in template:
                sides = (f"({sides[0]})", f"({sides[1]})")
            label = template % sides
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
        # marginaleffects labels a change "+d" whatever the function ("mean(+d)" for the
        # averaged forms).
        label = f"+{_r_number(d)}" if "mean" not in template else f"mean(+{_r_number(d)})"
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
        label = template % (_r_number(pair[1]), _r_number(pair[0]))
        low_x, high_x = np.full_like(x, pair[0]), np.full_like(x, pair[1])
    settings.append(_Setting(rows.frame.assign(**{name: low_x}), "low"))
    settings.append(_Setting(rows.frame.assign(**{name: high_x}), "high"))
    return [_Contrast(name, label, first, first + 1, function)]


def _custom_change(change: Any, x: FloatArray, name: str) -> tuple[FloatArray, FloatArray]:
    """A function's change of a numeric variable (marginaleffects' variables = list(x =
    function)): called with the rows' values, it returns their low and high values (a pair of
    arrays, or an array of two columns)."""
    try:
        out = change(x.copy())
        if isinstance(out, (tuple, list)) and len(out) == 2:  # (low, high)
            pair = np.vstack([np.asarray(v, dtype=np.float64).ravel() for v in out])
        else:  # two columns
            pair = np.asarray(out, dtype=np.float64).T
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"variables: the function changing {name!r} failed or returned no numbers: {error}"
        ) from None
    if pair.shape != (2, len(x)):
        raise ValueError(
            f"variables: the function changing {name!r} must return two values per row (low, "
            f"high), got shape {pair.shape}"
        )
    return pair[0], pair[1]


def _level_settings(rows: _Rows, name: str, levels: Sequence[Any], settings: list[_Setting]) -> int:
    """Settings with every row at each level of ``name`` (appended); the first one's index."""
    first = len(settings)
    n = len(rows.frame)
    for level in levels:
        column = np.empty(n, dtype=object)
        column[:] = [level] * n
        settings.append(_Setting(rows.frame.assign(**{name: column}), label_key(level)))
    return first


def _factor_settings(
    rows: _Rows,
    name: str,
    levels: tuple[Any, ...],
    spec: Any,
    function: str,
    settings: list[_Setting],
) -> list[_Contrast]:
    kind = "reference" if spec is None else spec
    if not isinstance(kind, str) or kind not in FACTOR_CONTRASTS:
        raise ValueError(
            f"variables: the contrast of factor {name!r} must be one of "
            f"{', '.join(map(repr, FACTOR_CONTRASTS))}, got {spec!r}"
        )
    if len(levels) < 2:
        raise ValueError(f"factor {name!r} has one level in the fit: nothing to compare")
    first = _level_settings(rows, name, levels, settings)
    k = len(levels)
    if kind == "reference":
        pairs = [(0, j) for j in range(1, k)]
    elif kind == "sequential":
        pairs = [(j - 1, j) for j in range(1, k)]
    else:
        pairs = [(i, j) for j in range(1, k) for i in range(j)]  # marginaleffects' order
    # A factor's slope is its difference (marginaleffects' slopes report factors so).
    function = function if function in COMPARISONS else "difference"
    template = COMPARISONS[function]
    return [
        _Contrast(
            name,
            template % (settings[first + j].label, settings[first + i].label),
            first + i,
            first + j,
            function,
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


BATCH_ROWS = 200_000
"""Most rows predicted by one rebuild of the design: the settings of a call are stacked up to
this many rows (one rebuild costs about as much for 2,000 rows as for 20,000)."""


def _predict(
    result: ResultBase,
    design: DesignInfo,
    settings: Sequence[_Setting],
    offset: FloatArray | None,
    blocks: tuple[int, ...],
    type: str,
) -> list[_Predicted]:
    """The predictions of each setting's rows, the settings' frames stacked into batches of
    at most BATCH_ROWS rows for the design's rebuild."""
    out: list[_Predicted] = []
    start = 0
    while start < len(settings):
        n = len(settings[start].frame)
        stop = start + max(1, BATCH_ROWS // max(n, 1))
        batch = settings[start:stop]
        frame = pd.concat([s.frame for s in batch], ignore_index=True)
        values = None if offset is None else np.tile(offset, len(batch))
        out.extend(_split(_predict_rows(result, design, frame, values, blocks, type), len(batch)))
        start = stop
    return out


def _split(predicted: _Predicted, parts: int) -> list[_Predicted]:
    n = len(predicted.mu) // parts
    return [
        _Predicted(
            predicted.mu[i * n : (i + 1) * n],
            predicted.slope[i * n : (i + 1) * n],
            predicted.x[i * n : (i + 1) * n],
        )
        for i in range(parts)
    ]


def _predict_rows(
    result: ResultBase,
    design: DesignInfo,
    frame: pd.DataFrame,
    offset: FloatArray | None,
    blocks: tuple[int, ...],
    type: str,
) -> _Predicted:
    new = new_data_design(design, frame, offset, random=blocks)
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


def _group_codes(keys: pd.DataFrame) -> tuple[NDArray[np.intp], pd.DataFrame]:
    """Each row's group among the distinct rows of ``keys`` (-1: a missing value) and the
    groups' values, sorted (categoricals in their categories' order)."""
    names = list(keys.columns)
    keys = keys.reset_index(drop=True)
    grouped = keys.groupby(names, sort=True, dropna=True, observed=True).ngroup()
    codes = np.asarray(grouped.fillna(-1), dtype=np.intp)
    values = keys.drop_duplicates().dropna().sort_values(names).reset_index(drop=True)
    return codes, values


def _by_keys(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    missing = [b for b in by if b not in frame.columns]
    if missing:
        raise ValueError(
            f"by: column(s) {', '.join(map(repr, missing))} not in the data "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    return frame.loc[:, by]


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


def _group_means(
    codes: NDArray[np.intp],
    n_groups: int,
    values: FloatArray,
    jacobian: FloatArray,
    weights: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Means of ``values`` and of the rows of ``jacobian`` within each group, weighted by
    ``weights`` (None: equally; rows with a code of -1 or a value that is not finite left
    out)."""
    use = np.isfinite(values) & (codes >= 0)
    n = len(values)
    w = np.ones(int(use.sum())) if weights is None else weights[use]
    members = scipy.sparse.csr_matrix((w, (codes[use], np.flatnonzero(use))), shape=(n_groups, n))
    counts = np.asarray(members.sum(axis=1)).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (members @ np.where(use, values, 0.0)) / counts
        mean_jacobian = (members @ np.where(use[:, None], jacobian, 0.0)) / counts[:, None]
    return np.asarray(mean, dtype=np.float64), np.asarray(mean_jacobian, dtype=np.float64)


def _compare(
    function: str, hi: FloatArray, lo: FloatArray, step: float, x: FloatArray | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The function's value of the predictions hi and lo and its derivatives in each."""
    base = function.removesuffix("avg")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if base == "difference":
            return hi - lo, np.ones_like(hi), -np.ones_like(lo)
        if base == "ratio":
            return hi / lo, 1.0 / lo, -hi / lo**2
        if base == "lnratio":
            return np.log(hi / lo), 1.0 / hi, -1.0 / lo
        if base == "lnor":
            value = np.log(hi / (1.0 - hi)) - np.log(lo / (1.0 - lo))
            return value, 1.0 / (hi * (1.0 - hi)), -1.0 / (lo * (1.0 - lo))
        slope = (hi - lo) / step
        if base == "dydx":
            return slope, np.full_like(hi, 1.0 / step), np.full_like(lo, -1.0 / step)
        assert x is not None
        if base == "dyex":
            return slope * x, x / step, -x / step
        if base == "eydx":
            return slope / lo, 1.0 / (step * lo), -1.0 / (step * lo) - slope / lo**2
        # eyex
        return slope * x / lo, x / (step * lo), -x / (step * lo) - slope * x / lo**2


def _table(
    keys: dict[str, Any],
    estimate: FloatArray,
    jacobian: FloatArray,
    vcov: FloatArray,
    conf_level: float,
    tests: Tests,
    labelled: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The columns ``keys``, then estimate, std_error, z, p_value and the Wald interval of the
    estimates, or of the functions of them that ``hypothesis`` asks for (then one key, term,
    their labels); z against ``hypothesis`` when it is a single number (else 0); p-values
    adjusted by ``tests.p_adjust``; with ``tests.equivalence`` the one-sided tests and the
    TOST (z_noninf, z_nonsup, p_value_noninf, p_value_nonsup, p_value_equiv). SEs J V J'
    with J the estimates' ``jacobian`` in beta and V its covariance ``vcov``. ``labelled``:
    the keys that label the rows for hypothesis keywords (None: all but row). An estimate or
    variance that is not finite shows as NaN (never inf)."""
    hypothesis = tests.hypothesis
    null = null_value(hypothesis)
    tested = apply_hypothesis(
        hypothesis,
        estimate,
        jacobian,
        _row_labels({k: keys[k] for k in (labelled if labelled is not None else keys)}),
        list(keys["term"]) if "term" in keys else None,
    )
    if tested is not None:
        keys = {"term": tested.labels}
        estimate, jacobian = tested.estimate, tested.jacobian
    variance = row_variances(jacobian, vcov)
    estimate = np.where(np.isfinite(estimate), estimate, np.nan)
    variance = np.where(np.isfinite(variance), variance, np.nan)
    se = np.sqrt(np.clip(variance, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (estimate - null) / se
    z = np.where(np.isfinite(z), z, np.nan)
    q = tests.quantile(0.5 + conf_level / 2.0)
    table: dict[str, Any] = dict(keys)
    table["estimate"] = estimate
    table["std_error"] = se
    table["z"] = z
    p_value = 2.0 * tests.lower_tail(-np.abs(z))
    table["p_value"] = (
        p_value if tests.p_adjust is None else adjusted_p_values(p_value, tests.p_adjust)
    )
    table["ci_lower"] = estimate - q * se
    table["ci_upper"] = estimate + q * se
    bounds = tests.check()
    if bounds is not None:
        table.update(equivalence_tests(estimate, se, bounds, tests))
    if tests.p_adjust is not None:
        # as marginaleffects: no interval beside adjusted p-values (an unadjusted one would
        # not match them)
        del table["ci_lower"], table["ci_upper"]
    if tests.transform is not None:
        # as marginaleffects: estimate and limits transformed, the tests kept, the SE and z
        # (of the untransformed estimate) dropped
        for column in ("estimate", "ci_lower", "ci_upper"):
            if column in table:
                table[column] = tests.transformed(table[column])
        del table["std_error"], table["z"]
    return pd.DataFrame(table)


def _row_labels(keys: dict[str, Any]) -> list[str] | None:
    """Each row's label for hypothesis keywords, as marginaleffects makes it: the values of
    term, contrast and the by columns (those that vary, joined by ", "; in parentheses when
    one holds a minus); None when no such column."""
    columns = [k for k in keys if k != "row"]
    if not columns:
        return None
    texts = {k: [_text(v) for v in keys[k]] for k in columns}
    varying = [k for k in columns if len(set(texts[k])) > 1]
    labels = [
        ", ".join(parts) for parts in zip(*(texts[k] for k in varying or columns), strict=True)
    ]
    if any("-" in label for label in labels):
        labels = [f"({label})" for label in labels]
    return labels


def _text(value: Any) -> str:
    """A value as R pastes it: logical values TRUE/FALSE, numbers as as.character."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _r_number(float(value))
    return str(value)


@dataclass(frozen=True)
class _Common:
    """What every function checks first (the result, type, re, conf_level, the rows and the by
    columns): the design, the level, the random blocks and the rows, and how predictions are
    made."""

    design: DesignInfo
    level: float
    blocks: tuple[int, ...]
    rows: _Rows

    def predict(
        self, result: ResultBase, settings: Sequence[_Setting], type: str
    ) -> list[_Predicted]:
        return _predict(result, self.design, settings, self.rows.offset, self.blocks, type)


def _common(
    result: Any,
    newdata: Any,
    by: list[str],
    wts: Any,
    type: str,
    re: Any,
    conf_level: float | None,
    offset: Any,
    what: str,
    tests: Tests | None = None,
) -> _Common:
    design = _check(result, what)
    if tests is not None:
        tests.check()
    if type not in TYPES:
        raise ValueError(f"type must be 'response' or 'link', got {type!r}")
    level = result.conf_level if conf_level is None else fraction(conf_level, "conf_level")
    blocks = chosen_blocks(result.model, re)
    rows = _rows(result, design, newdata, offset, what, by)
    _by_keys(rows.frame, by)  # a by column the data lack: said before anything is computed
    rows = dataclasses.replace(rows, weights=_weights(wts, rows.frame))
    return _Common(design, level, blocks, rows)


def _weights(wts: Any, frame: pd.DataFrame) -> FloatArray | None:
    """wts as one finite non-negative weight per row (None: equal weights): a column of the
    data or the values themselves."""
    if wts is None:
        return None
    n = len(frame)
    if isinstance(wts, str):
        if wts not in frame.columns:
            raise ValueError(
                f"wts: column {wts!r} not in the data (columns: "
                f"{', '.join(map(str, frame.columns))})"
            )
        values = pd.to_numeric(frame[wts], errors="coerce").to_numpy(dtype=np.float64)
    else:
        try:
            values = np.asarray(wts, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"wts must be a column name or one number per row, got {wts!r}"
            ) from None
        if values.ndim != 1 or len(values) != n:
            raise ValueError(
                f"wts must have one value per row of the data ({n}), got shape {values.shape}"
            )
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("wts must be finite non-negative numbers (a missing value is not one)")
    if not np.any(values > 0):
        raise ValueError("wts: every weight is zero")
    return values


def _check_eps(eps: Any) -> float | None:
    if eps is None:
        return None
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0.0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if not math.isfinite(eps):
        raise ValueError(f"eps must be finite, got {eps!r}")
    return float(eps)


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
    function: str,
    average: bool,
    what: str,
    wts: Any = None,
    tests: Tests = NO_TESTS,
    cross: bool = False,
) -> pd.DataFrame:
    slope = function in SLOPE_KINDS
    if not isinstance(cross, (bool, np.bool_)):
        raise ValueError(f"cross must be True or False, got {cross!r}")
    if slope:
        eps = _check_eps(eps)
    elif function not in COMPARISONS:
        raise ValueError(
            f"comparison must be one of {', '.join(map(repr, COMPARISONS))}, got {function!r}"
        )
    elif function.endswith("avg") and not average:
        raise ValueError(
            f"comparison {function!r} compares averages: use avg_comparisons (or "
            f"{function.removesuffix('avg')!r} here)"
        )
    by_names = _by_names(by)
    common = _common(result, newdata, by_names, wts, type, re, conf_level, offset, what, tests)
    design, rows = common.design, common.rows
    specs = _variable_specs(variables, design, comparison=not slope)
    factors = _factor_levels(design, list(specs))
    settings: list[_Setting] = []
    contrasts: list[_Contrast] = []
    per_variable: dict[str, list[_Contrast]] = {}
    for name, spec in specs.items():
        if name in factors:
            found = _factor_settings(rows, name, factors[name], spec, function, settings)
        else:
            found = _numeric_settings(result, design, rows, name, spec, function, eps, settings)
        per_variable[name] = found
        contrasts += found
    crossed: list[str] = []
    if cross:
        crossed = _given_order(variables, list(specs))
        contrasts, settings = _crossed(rows, crossed, per_variable, settings, function)
    predicted = common.predict(result, settings, type)
    vcov = np.asarray(result.fit_output.vcov_beta, dtype=np.float64)
    n = len(rows.frame)
    codes = np.zeros(n, dtype=np.intp)
    group_values = pd.DataFrame(index=pd.RangeIndex(1))
    if by_names:
        codes, group_values = _group_codes(_by_keys(rows.frame, by_names))
    n_groups = len(group_values)
    estimates: list[FloatArray] = []
    jacobians: list[FloatArray] = []
    for contrast in contrasts:
        lo, hi = predicted[contrast.low], predicted[contrast.high]
        j_hi = hi.slope[:, None] * hi.x
        j_lo = lo.slope[:, None] * lo.x
        if average and contrast.function.endswith("avg"):
            complete = np.isfinite(hi.mu) & np.isfinite(lo.mu)
            weights = rows.weights
            mean_hi, jac_hi = _group_means(
                codes, n_groups, np.where(complete, hi.mu, np.nan), j_hi, weights
            )
            mean_lo, jac_lo = _group_means(
                codes, n_groups, np.where(complete, lo.mu, np.nan), j_lo, weights
            )
            value, d_hi, d_lo = _compare(contrast.function, mean_hi, mean_lo, 1.0, None)
            estimates.append(value)
            jacobians.append(d_hi[:, None] * jac_hi + d_lo[:, None] * jac_lo)
            continue
        unit, d_hi, d_lo = _compare(contrast.function, hi.mu, lo.mu, contrast.step, contrast.x)
        unit_jacobian = d_hi[:, None] * j_hi + d_lo[:, None] * j_lo
        if not average:
            estimates.append(unit)
            jacobians.append(unit_jacobian)
            continue
        mean, mean_jacobian = _group_means(codes, n_groups, unit, unit_jacobian, rows.weights)
        estimates.append(mean)
        jacobians.append(mean_jacobian)
    size = n_groups if average else n
    keys: dict[str, Any] = {"term": [c.term for c in contrasts for _ in range(size)]}
    if cross:  # one column per variable: its contrast in each combination
        for k, name in enumerate(crossed):
            keys[f"contrast_{name}"] = [
                c.label.split(CROSS_SEPARATOR)[k] for c in contrasts for _ in range(size)
            ]
    else:
        keys["contrast"] = [c.label for c in contrasts for _ in range(size)]
    if average:
        keys.update({b: np.tile(group_values[b].to_numpy(), len(contrasts)) for b in by_names})
    else:
        keys["row"] = np.tile(rows.frame.index.to_numpy(), len(contrasts))
    table = _table(
        keys,
        np.concatenate(estimates),
        np.concatenate(jacobians),
        vcov,
        common.level,
        tests,
    )
    table.attrs.update(
        {"type": type, "level": common.level, "notes": _notes(result, type, common.blocks)}
    )
    return table


CROSS_SEPARATOR = "\x1f"
"""Joins the variables' contrast labels in a crossed contrast's label (split into the
contrast_<name> columns)."""


def _given_order(variables: Any, names: list[str]) -> list[str]:
    """The variables in the order the caller gave them (alphabetical when not given)."""
    if isinstance(variables, str) or variables is None:
        return names
    return [name for name in list(variables) if name in names]


def _crossed(
    rows: _Rows,
    names: list[str],
    per_variable: dict[str, list[_Contrast]],
    settings: list[_Setting],
    function: str,
) -> tuple[list[_Contrast], list[_Setting]]:
    """marginaleffects' cross=TRUE: a contrast for each combination of the variables'
    contrasts (the first variable's varying slowest), all the variables at their low values
    against all at their high values; only those settings are predicted."""
    if len(names) < 2:
        raise ValueError("cross=True needs at least two variables to change together")
    contrasts: list[_Contrast] = []
    crossed: list[_Setting] = []
    for combination in itertools.product(*(per_variable[name] for name in names)):
        sides = []
        for side in ("low", "high"):
            changed = {
                name: settings[getattr(c, side)].frame[name]
                for name, c in zip(names, combination, strict=True)
            }
            crossed.append(_Setting(rows.frame.assign(**changed), side))
            sides.append(len(crossed) - 1)
        label = CROSS_SEPARATOR.join(c.label for c in combination)
        contrasts.append(_Contrast("cross", label, sides[0], sides[1], function))
    return contrasts, crossed


def _notes(result: ResultBase, type: str, blocks: tuple[int, ...]) -> tuple[str, ...]:
    scale = "probability" if type == "response" else "link (linear predictor)"
    random = (
        "random effects at their conditional modes" if blocks else "random effects excluded (zero)"
    )
    notes = [f"Predictions on the {scale} scale, {random}; delta-method SEs in the fixed effects."]
    method = result.method_object
    if method.posterior:
        notes.append(
            f"Method {result.method!r}: at the posterior means, with the posterior covariance "
            "of the fixed effects."
        )
    return tuple(notes)


def _grid_values(result: ResultBase, common: _Common, variables: Any) -> dict[str, tuple[Any, ...]]:
    """avg_predictions' variables as {name: values}: a factor at its levels (or those given),
    a numeric variable at the values given or R's fivenum over the rows."""
    if isinstance(variables, Mapping):
        specs = dict(variables)
        names = list(specs)
        if not all(isinstance(name, str) for name in names):
            raise ValueError(f"variables must map variable names to values, got {variables!r}")
        _variable_specs(names, common.design, comparison=True)  # checks the names
    else:
        checked = _variable_specs(variables, common.design, comparison=True)
        # In the order given: the first varies slowest, as marginaleffects' grid.
        order = [variables] if isinstance(variables, str) else list(variables)
        specs = {name: checked[name] for name in order}
    factors = _factor_levels(common.design, list(specs))
    grid: dict[str, tuple[Any, ...]] = {}
    for name, given in specs.items():
        if name in factors:
            levels = factors[name]
            if given is None:
                grid[name] = levels
                continue
            keys = {label_key(level): level for level in levels}
            chosen = []
            for value in [given] if np.ndim(given) == 0 else list(np.ravel(given)):
                if label_key(value) not in keys:
                    raise ValueError(
                        f"variables: {value!r} is not a level of factor {name!r} (levels: "
                        f"{', '.join(map(str, levels))})"
                    )
                chosen.append(keys[label_key(value)])
            grid[name] = tuple(dict.fromkeys(chosen))
            continue
        if given is None:
            values = fivenum(_numbers(common.rows.frame, common.design, name))
        else:
            try:
                values = tuple(float(v) for v in np.ravel(np.asarray(given, dtype=np.float64)))
            except (TypeError, ValueError):
                values = ()
            if not values or not all(math.isfinite(v) for v in values):
                raise ValueError(
                    f"variables: the values of numeric variable {name!r} must be finite "
                    f"numbers, got {given!r}"
                )
        grid[name] = tuple(sorted(set(values)))
    size = math.prod(len(v) for v in grid.values())
    if size > GRID_LIMIT:
        raise ValueError(
            f"variables would set the rows to {size} combinations (more than {GRID_LIMIT})"
        )
    return grid


GRID_LIMIT = 1000
"""Most combinations of values avg_predictions' variables may ask for."""


def avg_predictions(
    result: Any,
    variables: Any = None,
    newdata: Any = None,
    by: Any = None,
    type: str = "response",
    re: Any = "include",
    conf_level: float | None = None,
    offset: Any = None,
    wts: Any = None,
    hypothesis: Any = None,
    equivalence: Any = None,
    p_adjust: str | None = None,
    transform: Any = None,
    df: float = math.inf,
) -> pd.DataFrame:
    """Average predictions over the rows (marginaleffects' avg_predictions): the mean
    predicted probability (``type="response"``; "link": the linear predictor) over the rows the
    model was fitted to (or newdata), overall or within each group of the ``by`` columns.

    variables: counterfactual averages: every row set to each value of the variables (a name,
    a list of names, or a dict name -> values; a factor at its levels, a numeric variable at
    R's fivenum over the rows unless values are given; several variables crossed, the first
    varying slowest), the rows' predictions averaged per value (per ``by`` group when by is
    given): e.g. the mean probability were every woman urban, and were every woman rural,
    each with her own other covariates (standardization, G-computation). re, conf_level,
    offset, hypothesis, equivalence, p_adjust and transform as slopes(); wts as
    avg_slopes(). Delta-method SEs in the fixed
    effects (random effects at their modes). Columns: the by columns (else the variables),
    estimate, std_error, z, p_value, ci_lower, ci_upper."""
    return _predictions(
        result,
        variables,
        newdata,
        by,
        type,
        re,
        conf_level,
        offset,
        wts,
        Tests(hypothesis, equivalence, p_adjust, transform, df),
        True,
    )


def predictions(
    result: Any,
    variables: Any = None,
    newdata: Any = None,
    by: Any = None,
    type: str = "response",
    re: Any = "include",
    conf_level: float | None = None,
    offset: Any = None,
    wts: Any = None,
    hypothesis: Any = None,
    equivalence: Any = None,
    p_adjust: str | None = None,
    transform: Any = None,
    df: float = math.inf,
) -> pd.DataFrame:
    """Each row's prediction with its delta-method SE in the fixed effects (marginaleffects'
    predictions): the rows the model was fitted to, or newdata (e.g. a datagrid()), each once
    or, with ``variables``, once per value as avg_predictions sets them. The random effects at
    their conditional modes enter the prediction, not its SE (predict()'s ``se_fit`` adds
    their conditional variance). With ``by`` the predictions are averaged within its groups
    (avg_predictions). Other arguments as avg_predictions.

    Columns: row (the row's label in the data), the model's variables as predicted (those in
    the data), estimate, std_error, z, p_value, ci_lower, ci_upper (with hypothesis: term, the
    tests' labels, then estimate ...)."""
    average = by is not None
    return _predictions(
        result,
        variables,
        newdata,
        by,
        type,
        re,
        conf_level,
        offset,
        wts,
        Tests(hypothesis, equivalence, p_adjust, transform, df),
        average,
    )


def _predictions(
    result: Any,
    variables: Any,
    newdata: Any,
    by: Any,
    type: str,
    re: Any,
    conf_level: float | None,
    offset: Any,
    wts: Any,
    tests: Tests,
    average: bool,
) -> pd.DataFrame:
    what = "avg_predictions" if average else "predictions"
    by_names = _by_names(by)
    common = _common(result, newdata, by_names, wts, type, re, conf_level, offset, what, tests)
    frame = common.rows.frame
    grid = {} if variables is None else _grid_values(result, common, variables)
    names = list(grid)
    combos = list(itertools.product(*(grid[v] for v in names))) if names else [()]
    settings = [_Setting(frame.assign(**dict(zip(names, c, strict=True))), "") for c in combos]
    predicted = common.predict(result, settings, type)
    mu = np.concatenate([p.mu for p in predicted])
    jacobian = np.concatenate([p.slope[:, None] * p.x for p in predicted])
    vcov = np.asarray(result.fit_output.vcov_beta, dtype=np.float64)
    if not average:
        keys: dict[str, Any] = {"row": np.tile(frame.index.to_numpy(), len(combos))}
        for name in model_variables(common.design):
            if name in frame.columns:
                keys[name] = pd.concat([s.frame[name] for s in settings], ignore_index=True)
        table = _table(keys, mu, jacobian, vcov, common.level, tests, labelled=())
    else:
        n = len(frame)
        group_on = by_names or names
        keys = {}
        for v in group_on:
            if v in grid:  # the value each copy of the rows was set to, in the grid's order
                categories = pd.Index(list(grid[v]), dtype=object)
                positions = [categories.get_loc(c[names.index(v)]) for c in combos]
                codes = np.repeat(positions, n).astype(np.intp)
                keys[v] = pd.Categorical.from_codes(codes, categories=categories)
            else:
                keys[v] = np.tile(_by_keys(frame, [v])[v].to_numpy(), len(combos))
        if group_on:
            codes_all, values = _group_codes(pd.DataFrame(keys))
        else:
            codes_all, values = np.zeros(n * len(combos), dtype=np.intp), pd.DataFrame(index=[0])
        weights = common.rows.weights
        weights = None if weights is None else np.tile(weights, len(combos))
        mean, mean_jacobian = _group_means(codes_all, len(values), mu, jacobian, weights)
        columns = {
            v: np.asarray(values[v].astype(object) if v in grid else values[v]) for v in group_on
        }
        table = _table(columns, mean, mean_jacobian, vcov, common.level, tests)
    table.attrs.update(
        {"type": type, "level": common.level, "notes": _notes(result, type, common.blocks)}
    )
    return table


def hypotheses(
    result: Any,
    hypothesis: Any = None,
    equivalence: Any = None,
    p_adjust: str | None = None,
    conf_level: float | None = None,
    transform: Any = None,
    df: float = math.inf,
) -> pd.DataFrame:
    """Tests of the fixed effects or of functions of them (marginaleffects' hypotheses on a
    model): without ``hypothesis`` each coefficient against 0 (Wald, the link scale); with
    it, the functions it asks for of the coefficients b1, b2, ... in design-column order, or
    of their names ("urbanY = 2 * livch1", "exp(b4) / exp(b5) = 1"; results.hypothesis), with
    delta-method SEs from their exact derivatives (transform="exp": odds ratios and their
    limits). equivalence, p_adjust, conf_level, transform and df as
    slopes(). Columns: term, estimate, std_error, z, p_value, ci_lower, ci_upper."""
    fit = require_fit(result, "hypotheses")
    tests = Tests(hypothesis, equivalence, p_adjust, transform, df)
    tests.check()
    level = fit.conf_level if conf_level is None else fraction(conf_level, "conf_level")
    beta = np.asarray(fit.fit_output.beta, dtype=np.float64)
    vcov = np.asarray(fit.fit_output.vcov_beta, dtype=np.float64)
    keys = {"term": list(fit.fixed_names)}
    table = _table(keys, beta, np.eye(len(beta)), vcov, level, tests)
    if isinstance(hypothesis, str) and hypothesis not in HYPOTHESIS_KEYWORDS:
        table["term"] = [hypothesis]  # hypotheses() labels an equation as written
    notes = ("Wald tests of the fixed effects (link scale); delta-method SEs.",)
    table.attrs.update({"type": "link", "level": level, "notes": notes})
    return table


def slopes(
    result: Any,
    variables: Any = None,
    newdata: Any = None,
    type: str = "response",
    re: Any = "include",
    eps: float | None = None,
    conf_level: float | None = None,
    offset: Any = None,
    slope: str = "dydx",
    hypothesis: Any = None,
    equivalence: Any = None,
    p_adjust: str | None = None,
    transform: Any = None,
    df: float = math.inf,
) -> pd.DataFrame:
    """The slope of each row's prediction in each numeric variable (and each factor's
    comparisons), one row of the table per data row and contrast (marginaleffects' slopes;
    module docstring). variables: a name or a list of names (None: every variable of the
    fixed part); newdata: the rows (None: those the model was fitted to; "mean": one row of
    typical values, the effect at the mean; "median", "tukey": numbers at their median or
    fivenum; by columns at each value; results.datagrid.NEWDATA_SUMMARIES); type "response"
    (probability) or "link"; re as predict's; eps: the step of the forward difference (None:
    SLOPE_STEP times the variable's range); conf_level: of the intervals (None: the fit's);
    offset: the offset of newdata's rows when the model was fitted with offset= values; slope:
    "dydx" (default), or an elasticity "eyex", "eydx", "dyex" (SLOPE_KINDS); hypothesis:
    functions of the table's estimates b1, b2, ... to estimate and test instead of them (a
    keyword such as "pairwise", an equation "b1 = b2", weights; results.hypothesis), or a
    number, the null value of the z tests (None: 0); equivalence: bounds (lo, hi) or one
    number, adding the one-sided tests and the TOST (z_noninf, z_nonsup, p_value_noninf,
    p_value_nonsup, p_value_equiv); p_adjust: R's p.adjust method of the p-values ("holm",
    "hochberg", "hommel", "bonferroni", "BH", "BY", "fdr"; the intervals are then left out,
    as marginaleffects leaves them); transform: "exp" or a function
    applied to the estimates and interval limits (their SE and z dropped, p-values kept:
    marginaleffects' transform), e.g. odds ratios from comparison="lnor"; df: degrees of
    freedom of t tests and intervals (inf, the default: z, as marginaleffects for glmer).

    Columns: term, contrast, row (the row's label in the data), estimate, std_error, z,
    p_value, ci_lower, ci_upper (with hypothesis: term, the tests' labels, then estimate
    ...)."""
    return _effects(
        result,
        variables,
        newdata,
        None,
        type,
        re,
        eps,
        conf_level,
        offset,
        _slope_kind(slope),
        False,
        "slopes",
        None,
        Tests(hypothesis, equivalence, p_adjust, transform, df),
    )


def _slope_kind(slope: Any) -> str:
    if not isinstance(slope, str) or slope not in SLOPE_KINDS:
        raise ValueError(f"slope must be one of {', '.join(map(repr, SLOPE_KINDS))}, got {slope!r}")
    return slope


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
    slope: str = "dydx",
    wts: Any = None,
    hypothesis: Any = None,
    equivalence: Any = None,
    p_adjust: str | None = None,
    transform: Any = None,
    df: float = math.inf,
) -> pd.DataFrame:
    """Average marginal effects: each row's slope (slopes()) averaged over the rows, or over
    the rows of each group of the ``by`` columns of the data (marginaleffects' avg_slopes).
    wts: weights of the averages, a column of the data or one non-negative number per row
    (marginaleffects' wts; None: equal); hypothesis, equivalence, p_adjust and transform as
    slopes(). Columns: term, contrast,
    the by columns, estimate,
    std_error, z, p_value, ci_lower, ci_upper; ``attrs["notes"]`` say the scale and how the
    SEs were made."""
    return _effects(
        result,
        variables,
        newdata,
        by,
        type,
        re,
        eps,
        conf_level,
        offset,
        _slope_kind(slope),
        True,
        "slopes",
        wts,
        Tests(hypothesis, equivalence, p_adjust, transform, df),
    )


def comparisons(
    result: Any,
    variables: Any = None,
    newdata: Any = None,
    type: str = "response",
    re: Any = "include",
    conf_level: float | None = None,
    offset: Any = None,
    comparison: str = "difference",
    hypothesis: Any = None,
    equivalence: Any = None,
    p_adjust: str | None = None,
    transform: Any = None,
    cross: bool = False,
    df: float = math.inf,
) -> pd.DataFrame:
    """Each row's difference in prediction when one variable changes (marginaleffects'
    comparisons; module docstring), one row of the table per data row and contrast.
    variables: a name, a list of names or a dict name -> change: for a numeric variable a
    number d (x + d/2 against x - d/2; default 1), two numbers (every row at each),
    "minmax", "iqr" (the quartiles), "sd" or "2sd" (the mean -/+ half an SD or one; these
    over the fit's rows, NUMERIC_CHANGES), or a function of the rows' values returning their
    low and high values (labelled "custom"); for a factor "reference" (default), "sequential"
    or "pairwise". comparison: "difference" (default), "ratio", "lnratio" or "lnor"
    (COMPARISONS). cross: change the variables together (marginaleffects' cross=TRUE): one
    estimate per combination of their contrasts, every variable at its low value against
    every one at its high value (term "cross", a contrast_<name> column per variable, in the
    order given). Other arguments and columns as slopes()."""
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
        comparison,
        False,
        "comparisons",
        None,
        Tests(hypothesis, equivalence, p_adjust, transform, df),
        cross,
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
    comparison: str = "difference",
    wts: Any = None,
    hypothesis: Any = None,
    equivalence: Any = None,
    p_adjust: str | None = None,
    transform: Any = None,
    cross: bool = False,
    df: float = math.inf,
) -> pd.DataFrame:
    """comparisons() averaged over the rows, or within each group of the ``by`` columns
    (marginaleffects' avg_comparisons): e.g. the average difference in probability between
    urban and rural women, every woman's own covariates kept. comparison: as comparisons(),
    or a function of the averages, "differenceavg", "ratioavg" (the risk ratio of the two
    average probabilities), "lnratioavg", "lnoravg" (weighted averages with wts). wts and
    columns as avg_slopes()."""
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
        comparison,
        True,
        "comparisons",
        wts,
        Tests(hypothesis, equivalence, p_adjust, transform, df),
        cross,
    )
