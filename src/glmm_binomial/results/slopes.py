"""Marginal effects over observed rows: slopes and comparisons of predicted probabilities, as
R's marginaleffects 0.11.0 computes them for a glmer fit (slopes, avg_slopes, comparisons,
avg_comparisons); the rows, predictions, SEs and tables as results.effect_rows makes them.

Each row of the data (by default the rows the model was fitted to; or ``newdata``) is
predicted twice, with one variable changed, and the two predictions compared:

- a numeric variable's slope ("dY/dX"): (mu(x + h) - mu(x)) / h, marginaleffects' forward
  difference, h = SLOPE_STEP times the variable's range over the fit's rows (``eps=``
  another step);
- a numeric variable's comparison: mu(x + d/2) - mu(x - d/2) for a change d ("+1" by
  default, centred as marginaleffects centres it), or mu(b) - mu(a) with every row at the
  values a < b (a pair, "minmax", "iqr", "sd", "2sd": NUMERIC_CHANGES over the fit's rows),
  or the low and high values a function of the rows' values returns ("custom");
- a factor's (or a logical variable's) comparison: every row at one level minus every row at
  another: each level against the first ("reference", the default), each level against the
  one before it ("sequential"), or every pair, later minus earlier ("pairwise": 1 - 0, 2 - 0,
  2 - 1, ...). A factor's slope is its comparison (marginaleffects reports factors so in
  slopes too). ``cross=True`` changes the variables together.

The two predictions hi and lo of a row are compared by their difference (the default), or by
``comparison=`` "ratio", "lnratio" or "lnor" (the log odds ratio), or, in avg_comparisons, by
the function of their averages ("ratioavg": mean(hi) / mean(lo), the risk ratio, ...); a slope
may be an elasticity (``slope=`` "eyex", "eydx", "dyex": (d mu / dx) x / mu, ... with mu the
row's own prediction).

The avg_ functions average the rows' estimates (all rows, or within each group of the ``by``
columns of the data; weighted by ``wts=``, marginaleffects' wts); the others give one estimate
per row (``row``: the row's label in the data). The exact Jacobian of a row's estimate is
c_hi f(eta_hi) x_hi + c_lo f(eta_lo) x_lo with c_hi, c_lo the comparison's derivatives in hi
and lo (1 and -1 for a difference) and f = d mu / d eta, averaged as the estimate is. Terms
come in alphabetical order, as marginaleffects orders them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.model.design import DesignInfo
from glmm_binomial.model.frame import label_key
from glmm_binomial.results.base import ResultBase, data_rows
from glmm_binomial.results.effect_rows import (
    Predicted,
    Rows,
    Setting,
    by_columns,
    by_keys,
    column_numbers,
    common_inputs,
    draw_shifts,
    draws_table,
    effect_notes,
    effect_table,
    factor_levels,
    group_codes,
    group_draw_means,
    group_means,
    mu_draws,
    posterior_beta,
    r_number,
    variable_specs,
)
from glmm_binomial.results.hypothesis import Tests

__all__ = [
    "COMPARISONS",
    "CROSS_SEPARATOR",
    "FACTOR_CONTRASTS",
    "NUMERIC_CHANGES",
    "SLOPE_KINDS",
    "SLOPE_STEP",
    "avg_comparisons",
    "avg_slopes",
    "comparisons",
    "slopes",
]

FloatArray = NDArray[np.float64]


NO_TESTS = Tests()


SLOPE_STEP = 1e-4
"""A slope's forward-difference step as a fraction of the variable's range over the fit's rows
(marginaleffects' default eps)."""


FACTOR_CONTRASTS = ("reference", "sequential", "pairwise")


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


def _range(result: ResultBase, design: DesignInfo, name: str, rows: Rows) -> tuple[float, float]:
    """The variable's minimum and maximum over the fit's rows (over ``rows`` when the fit
    kept no summary of it)."""
    for summary in design.variables:
        if summary.name == name and summary.kind == "numeric":
            if math.isfinite(summary.minimum) and math.isfinite(summary.maximum):
                return summary.minimum, summary.maximum
    values = column_numbers(rows.frame, design, name)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"variable {name!r} has no value to take its range from")
    return float(values.min()), float(values.max())


def _spread_values(result: ResultBase, design: DesignInfo, rows: Rows, name: str) -> FloatArray:
    """The variable's values over the fit's rows (over ``rows`` when the result keeps no
    data), missing ones left out: what "sd" and "iqr" changes are measured on."""
    frame = rows.frame
    if not rows.fitted:
        try:
            frame = data_rows(result, "comparisons")[0]
        except ValueError:
            pass  # a result without its data: newdata's rows
    values = column_numbers(frame, design, name)
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise ValueError(f"variable {name!r} has fewer than two values to take its spread from")
    return values


def _slope_step(
    result: ResultBase, design: DesignInfo, rows: Rows, name: str, eps: float | None
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
    rows: Rows,
    name: str,
    spec: Any,
    function: str,
    eps: float | None,
    settings: list[Setting],
) -> list[_Contrast]:
    x = column_numbers(rows.frame, design, name)
    first = len(settings)
    if function in SLOPE_KINDS:
        step = _slope_step(result, design, rows, name, eps)
        settings.append(Setting(rows.frame.assign(**{name: x}), "x"))
        settings.append(Setting(rows.frame.assign(**{name: x + step}), "x + h"))
        return [_Contrast(name, SLOPE_KINDS[function], first, first + 1, function, step, x)]
    template = COMPARISONS[function]
    change: Any = 1.0 if spec is None else spec
    if callable(change):
        low_x, high_x = _custom_change(change, x, name)
        settings.append(Setting(rows.frame.assign(**{name: low_x}), "low"))
        settings.append(Setting(rows.frame.assign(**{name: high_x}), "high"))
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
        label = f"+{r_number(d)}" if "mean" not in template else f"mean(+{r_number(d)})"
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
        label = template % (r_number(pair[1]), r_number(pair[0]))
        low_x, high_x = np.full_like(x, pair[0]), np.full_like(x, pair[1])
    settings.append(Setting(rows.frame.assign(**{name: low_x}), "low"))
    settings.append(Setting(rows.frame.assign(**{name: high_x}), "high"))
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


def _level_settings(rows: Rows, name: str, levels: Sequence[Any], settings: list[Setting]) -> int:
    """Settings with every row at each level of ``name`` (appended); the first one's index."""
    first = len(settings)
    n = len(rows.frame)
    for level in levels:
        column = np.empty(n, dtype=object)
        column[:] = [level] * n
        settings.append(Setting(rows.frame.assign(**{name: column}), label_key(level)))
    return first


def _factor_settings(
    rows: Rows,
    name: str,
    levels: tuple[Any, ...],
    spec: Any,
    function: str,
    settings: list[Setting],
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
    by_names = by_columns(by)
    common = common_inputs(
        result, newdata, by_names, wts, type, re, conf_level, offset, what, tests
    )
    design, rows = common.design, common.rows
    specs = variable_specs(variables, design, comparison=not slope)
    factors = factor_levels(design, list(specs))
    settings: list[Setting] = []
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
        codes, group_values = group_codes(by_keys(rows.frame, by_names))
    n_groups = len(group_values)
    beta_draws = posterior_beta(result)
    estimates: list[FloatArray] = []
    jacobians: list[FloatArray] = []
    for contrast in [] if beta_draws is not None else contrasts:
        lo, hi = predicted[contrast.low], predicted[contrast.high]
        j_hi = hi.slope[:, None] * hi.x
        j_lo = lo.slope[:, None] * lo.x
        if average and contrast.function.endswith("avg"):
            complete = np.isfinite(hi.mu) & np.isfinite(lo.mu)
            weights = rows.weights
            mean_hi, jac_hi = group_means(
                codes, n_groups, np.where(complete, hi.mu, np.nan), j_hi, weights
            )
            mean_lo, jac_lo = group_means(
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
        mean, mean_jacobian = group_means(codes, n_groups, unit, unit_jacobian, rows.weights)
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
    if beta_draws is not None:
        draws = _contrast_draws(
            result, contrasts, predicted, (codes, n_groups), rows.weights, average, beta_draws, type
        )
        table = draws_table(keys, draws, common.level, tests)
    else:
        table = effect_table(
            keys,
            np.concatenate(estimates),
            np.concatenate(jacobians),
            vcov,
            common.level,
            tests,
            limit=result.fit_output.vcov_limit,
        )
    table.attrs.update(
        {"type": type, "level": common.level, "notes": effect_notes(result, type, common.blocks)}
    )
    return table


def _contrast_draws(
    result: ResultBase,
    contrasts: list[_Contrast],
    predicted: list[Predicted],
    groups: tuple[NDArray[np.intp], int],
    weights: FloatArray | None,
    average: bool,
    beta_draws: FloatArray,
    type: str,
) -> Iterator[FloatArray]:
    """Each contrast's posterior draws in turn (its rows of the table x draws): computed at
    every draw of beta (the random effects at their posterior means), in blocks of DRAW_BLOCK
    draws; one contrast at a time, so that a table of many rows need not hold every row's
    draws at once."""
    codes, n_groups = groups
    for c in contrasts:
        blocks = []
        for shift in draw_shifts(result, beta_draws):
            hi = mu_draws(predicted[c.high], shift, result, type)
            lo = mu_draws(predicted[c.low], shift, result, type)
            if average and c.function.endswith("avg"):
                complete = np.isfinite(hi) & np.isfinite(lo)
                mean_hi = group_draw_means(codes, n_groups, np.where(complete, hi, np.nan), weights)
                mean_lo = group_draw_means(codes, n_groups, np.where(complete, lo, np.nan), weights)
                blocks.append(_compare(c.function, mean_hi, mean_lo, 1.0, None)[0])
                continue
            x = None if c.x is None else c.x[:, None]
            unit = _compare(c.function, hi, lo, c.step, x)[0]
            blocks.append(group_draw_means(codes, n_groups, unit, weights) if average else unit)
        yield np.concatenate(blocks, axis=1)


CROSS_SEPARATOR = "\x1f"
"""Joins the variables' contrast labels in a crossed contrast's label (split into the
contrast_<name> columns)."""


def _given_order(variables: Any, names: list[str]) -> list[str]:
    """The variables in the order the caller gave them (alphabetical when not given)."""
    if isinstance(variables, str) or variables is None:
        return names
    return [name for name in list(variables) if name in names]


def _crossed(
    rows: Rows,
    names: list[str],
    per_variable: dict[str, list[_Contrast]],
    settings: list[Setting],
    function: str,
) -> tuple[list[_Contrast], list[Setting]]:
    """marginaleffects' cross=TRUE: a contrast for each combination of the variables'
    contrasts (the first variable's varying slowest), all the variables at their low values
    against all at their high values; only those settings are predicted."""
    if len(names) < 2:
        raise ValueError("cross=True needs at least two variables to change together")
    contrasts: list[_Contrast] = []
    crossed: list[Setting] = []
    for combination in itertools.product(*(per_variable[name] for name in names)):
        sides = []
        for side in ("low", "high"):
            changed = {
                name: settings[getattr(c, side)].frame[name]
                for name, c in zip(names, combination, strict=True)
            }
            crossed.append(Setting(rows.frame.assign(**changed), side))
            sides.append(len(crossed) - 1)
        label = CROSS_SEPARATOR.join(c.label for c in combination)
        contrasts.append(_Contrast("cross", label, sides[0], sides[1], function))
    return contrasts, crossed


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
    typical values, the effect at the mean; "median", "tukey", "grid", "marginalmeans":
    results.datagrid.NEWDATA_SUMMARIES; by columns at each value); type "response"
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
    ...; for an "mcmc" fit estimate, ci_lower, ci_upper: the median and credible interval of
    the estimate's posterior draws, results.effect_rows)."""
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
    (marginaleffects' wts; None: equal); hypothesis, equivalence, p_adjust, transform and df
    as slopes(). Columns: term, contrast, the by columns, estimate, std_error, z, p_value,
    ci_lower, ci_upper; ``attrs["notes"]`` say the scale and how the SEs were made."""
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
