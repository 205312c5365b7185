"""Rows to predict at, as marginaleffects 0.11.0's ``datagrid(model = ...)`` makes them.

``grid_type="typical"``: one row per combination of the values given, every other variable
the model reads at a typical value over the fit's rows: a factor, a text or logical column
and every grouping factor at its mode (the most frequent value; of equally frequent ones the
first in the data), an integer column at its mean rounded (R's round, half to even), any other
number at its mean. ``"counterfactual"``: every row the model was fitted to, once for each
combination of the values given (the rows' own values of the other variables; ``row`` is the
row's label in the data).

Combinations are crossed with the first variable given varying slowest (data.table's CJ);
columns: the model's other variables in formula order, then those given. The response is left
out (predictions do not read it; marginaleffects keeps it at its mean). A grid is plain data:
pass it as ``newdata`` to predict(), slopes(), comparisons() and their averages.

Also here: the rows of marginaleffects' newdata shortcuts ("mean", "median", "tukey", "grid",
"marginalmeans": summary_rows) and of its conditional plots (condition_grid, for
results.effect_plots).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from glmm_binomial.model.design import DesignInfo
from glmm_binomial.model.formula import expression_variables
from glmm_binomial.model.frame import ColumnReading, as_pandas, label_key, read_series
from glmm_binomial.model.variable_summary import formula_order
from glmm_binomial.results.base import data_rows, require_fit

__all__ = [
    "CONDITION_POINTS",
    "CONDITION_SHORTCUTS",
    "GRID_ROWS_LIMIT",
    "GRID_TYPES",
    "NEWDATA_SUMMARIES",
    "condition_grid",
    "datagrid",
    "fivenum",
    "model_variables",
    "summary_rows",
]

GRID_TYPES = ("typical", "counterfactual")

GRID_ROWS_LIMIT = 10_000_000
"""Most rows a grid may have (the combinations times, for a counterfactual grid, the rows)."""


def model_variables(design: DesignInfo) -> list[str]:
    """The columns predictions read (fixed and random parts, grouping factors, offsets), the
    response left out, in formula order."""
    formula = design.formula
    names: set[str] = set(expression_variables(formula.fixed))
    for term in formula.random:
        names |= expression_variables(term.expr) | set(term.group)
    for offset in formula.offsets:
        names |= expression_variables(offset)
    if design.offset_source == "column" and design.offset_column is not None:
        names.add(design.offset_column)
    return formula_order(names, formula.text)


def _factor_like(design: DesignInfo, name: str, series: pd.Series) -> bool:
    """Whether a typical value of the column is its mode: the fit read it as a factor or a
    logical value, it groups random effects, or it holds text or categories."""
    if any(name in term.group for term in design.formula.random):
        return True
    reading = next((r for r in design.columns if r.name == name), None)
    if reading is not None and reading.kind != "number":
        return True
    dtype = series.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dtype)
        or not pd.api.types.is_numeric_dtype(dtype)
    )


def _typical(design: DesignInfo, name: str, series: pd.Series, summary: str = "mean") -> pd.Series:
    """The column's typical values (NEWDATA_SUMMARIES) as a Series of the column's own dtype:
    a factor's mode ("grid", "marginalmeans": each of its values, in order of appearance); an
    integer column's mean rounded whatever the summary (marginaleffects' FUN_integer); any
    other number's mean, median ("median") or R's fivenum ("tukey", "grid")."""
    present = series.dropna().reset_index(drop=True)
    if len(present) == 0:
        raise ValueError(f"datagrid: column {name!r} has no value to take a typical one from")
    if _factor_like(design, name, series):
        if summary in ("grid", "marginalmeans"):
            return present.drop_duplicates().reset_index(drop=True)
        codes, _ = pd.factorize(present, sort=False)  # codes in order of first appearance
        first = int(np.argmax(np.bincount(codes)))
        return present.iloc[[int(np.flatnonzero(codes == first)[0])]].reset_index(drop=True)
    values = present.to_numpy(dtype=np.float64)
    mean = float(np.mean(values))
    if pd.api.types.is_integer_dtype(series.dtype):
        return pd.Series([np.round(mean)]).astype(series.dtype)
    if summary == "median":
        return pd.Series([float(np.median(values))])
    if summary in ("tukey", "grid"):
        return pd.Series(list(dict.fromkeys(fivenum(values))))
    return pd.Series([mean])


NEWDATA_SUMMARIES = ("mean", "median", "tukey", "grid", "marginalmeans")
"""marginaleffects' newdata shortcuts of the marginal-effect functions: one row with every
variable typical (numbers at their mean, "median": their median, "tukey": each value of R's
fivenum crossed; factors, text, logical columns and grouping factors at their mode), "grid":
numbers at fivenum and the others at each of their values, all crossed, "marginalmeans":
numbers at their mean and the others at each of their values; integer columns at their mean
rounded in every one; the by columns at each of their values."""


def summary_rows(result: Any, summary: str, keep: list[str]) -> pd.DataFrame:
    """The rows of a newdata shortcut (NEWDATA_SUMMARIES) over the fit's rows, the columns
    ``keep`` (by) at each of their values (in order of appearance)."""
    if summary not in NEWDATA_SUMMARIES:
        raise ValueError(
            f"newdata must be data or one of {', '.join(map(repr, NEWDATA_SUMMARIES))}, got "
            f"{summary!r}"
        )
    result = require_fit(result, "newdata")
    design = result.design
    if design is None:
        raise ValueError("newdata shortcuts need a result fitted from a formula")
    frame = data_rows(result, f"newdata={summary!r}", "")[0]
    missing = [name for name in keep if name not in frame.columns]
    if missing:
        raise ValueError(f"by: column {missing[0]!r} not in the data")
    others = [name for name in model_variables(design) if name not in keep]
    every = {name: frame[name].dropna().drop_duplicates().reset_index(drop=True) for name in keep}
    return _typical_grid(design, frame, others, every, summary)


def _typical_grid(
    design: DesignInfo,
    frame: pd.DataFrame,
    others: list[str],
    given: dict[str, pd.Series],
    summary: str = "mean",
) -> pd.DataFrame:
    """``others`` at their typical values over ``frame`` (by ``summary``: _typical), crossed
    with the values ``given``."""
    columns = {name: _typical(design, name, frame[name], summary) for name in others}
    columns.update(given)
    _check_size(float(np.prod([len(c) for c in columns.values()], dtype=np.float64)))
    return _cross(columns)


def _given(design: DesignInfo, name: str, value: Any, frame: pd.DataFrame) -> pd.Series:
    """The distinct values given for ``name`` (in the order given), as the column reads them:
    a factor's values checked against the fit's levels and kept in its categories."""
    values = list(dict.fromkeys(np.ravel(np.asarray(value, dtype=object)).tolist()))
    if not values:
        raise ValueError(f"datagrid: no value given for {name!r}")
    reading = next((r for r in design.columns if r.name == name), None)
    if reading is not None and reading.kind == "factor":
        keys = {label_key(level): level for level in reading.levels}
        unknown = [v for v in values if label_key(v) not in keys]
        if unknown:
            raise ValueError(
                f"datagrid: {unknown[0]!r} is not a level of {name!r} (levels: "
                f"{', '.join(map(str, reading.levels))})"
            )
        chosen = [keys[label_key(v)] for v in values]
        column = frame[name] if name in frame.columns else None
        if column is not None and isinstance(column.dtype, pd.CategoricalDtype):
            return pd.Series(pd.Categorical(chosen, dtype=column.dtype))
        return pd.Series(chosen, dtype=object)
    if reading is not None and reading.kind == "number":
        try:
            numbers = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"datagrid: {name!r} is numeric, its values must be numbers, got {value!r}"
            ) from None
        if not np.all(np.isfinite(numbers)):
            raise ValueError(f"datagrid: the values of {name!r} must be finite, got {value!r}")
        return pd.Series(numbers)
    return pd.Series(values)


def _cross(columns: dict[str, pd.Series]) -> pd.DataFrame:
    """Every combination of the columns' values, the first column varying slowest."""
    sizes = [len(c) for c in columns.values()]
    positions = (
        np.array(list(itertools.product(*(range(s) for s in sizes))), dtype=np.intp)
        if columns
        else np.zeros((1, 0), dtype=np.intp)
    )
    return pd.DataFrame(
        {
            name: column.iloc[positions[:, k]].reset_index(drop=True)
            for k, (name, column) in enumerate(columns.items())
        },
        index=pd.RangeIndex(positions.shape[0]),
    )


def datagrid(
    result: Any,
    newdata: Any = None,
    grid_type: str = "typical",
    **values: Any,
) -> pd.DataFrame:
    """A grid of rows to predict at (module docstring; marginaleffects' datagrid): each
    variable given as ``name=value`` or ``name=[values]``, the model's other variables at
    their typical values over the fit's rows (``grid_type="typical"``) or at each fitted
    row's own (``"counterfactual"``). newdata: the rows typical values and counterfactual rows
    are taken from (None: those the model was fitted to). A factor's values must be among its
    levels in the fit; a variable the model does not read is an error."""
    result = require_fit(result, "datagrid")
    design = result.design
    if design is None:
        raise ValueError(
            "datagrid needs a result fitted from a formula (glmm_binomial.fit): this one was "
            "fitted from arrays"
        )
    if not isinstance(grid_type, str) or grid_type not in GRID_TYPES:
        raise ValueError(f"grid_type must be 'typical' or 'counterfactual', got {grid_type!r}")
    variables = model_variables(design)
    unknown = [name for name in values if name not in variables]
    if unknown:
        raise ValueError(
            f"datagrid: {unknown[0]!r} is not a variable of the model (variables: "
            f"{', '.join(variables) or 'none'})"
        )
    if newdata is None:
        frame = data_rows(result, "datagrid")[0]
    else:
        frame = as_pandas(newdata, "newdata")
        if len(frame) == 0:
            raise ValueError("newdata has no rows")
    others = [name for name in variables if name not in values]
    missing = [name for name in others if name not in frame.columns]
    if missing:
        raise ValueError(f"datagrid: the data lack column {missing[0]!r} that the model uses")
    given = {name: _given(design, name, value, frame) for name, value in values.items()}
    combinations = int(np.prod([len(v) for v in given.values()], dtype=np.float64))
    if grid_type == "counterfactual":
        if not given:
            raise ValueError("datagrid: a counterfactual grid needs values of some variable")
        size = combinations * len(frame)
        _check_size(size)
        label = "row" if "row" not in variables else "rowidcf"
        rows = frame.loc[:, others].reset_index(drop=False, names=label)
        grid = _cross(given)
        repeated = rows.iloc[np.tile(np.arange(len(rows)), combinations)].reset_index(drop=True)
        settings = grid.iloc[np.repeat(np.arange(len(grid)), len(rows))].reset_index(drop=True)
        return pd.concat([repeated, settings], axis=1)
    return _typical_grid(design, frame, others, given)


def _check_size(size: float) -> None:
    if size > GRID_ROWS_LIMIT:
        raise ValueError(
            f"datagrid: the grid would have {size:.0f} rows (more than {GRID_ROWS_LIMIT})"
        )


def fivenum(values: Any) -> tuple[float, ...]:
    """R's fivenum of the finite values: minimum, lower hinge, median, upper hinge, maximum
    (Tukey)."""
    xs = np.sort(np.asarray(values, dtype=np.float64))
    xs = xs[np.isfinite(xs)]
    n = len(xs)
    if n == 0:
        return ()
    n4 = math.floor((n + 3) / 2) / 2
    depths = np.array([1.0, n4, (n + 1) / 2, n + 1 - n4, float(n)])
    out = 0.5 * (xs[np.floor(depths).astype(int) - 1] + xs[np.ceil(depths).astype(int) - 1])
    return tuple(float(v) for v in out)


CONDITION_POINTS = 50
"""Values of a numeric variable on a plot's x axis: equally spaced from its minimum to its
maximum over the fit's rows (marginaleffects' 50)."""

CONDITION_SHORTCUTS = ("threenum", "fivenum", "minmax", "quartile")
"""Named values of a numeric condition: mean -/+ SD and the mean; R's fivenum; minimum and
maximum; the quartiles (R's type 7)."""


def condition_grid(result: Any, condition: Any) -> tuple[pd.DataFrame, list[str]]:
    """The rows of a conditional plot (marginaleffects' plot_predictions(condition=)) and the
    condition's variables (x axis, then colour, then panels). ``condition``: a variable name,
    a list of up to three, or a dict name -> values (None: the default; a list of values; or
    a CONDITION_SHORTCUTS name). Defaults over the fit's rows: the x variable at
    CONDITION_POINTS values from its minimum to its maximum (a 0/1 variable at 0 and 1; a
    factor, text or logical variable at its levels), the others at R's fivenum (or their
    levels). Every other variable at its typical value (datagrid)."""
    if isinstance(condition, str):
        specs: dict[str, Any] = {condition: None}
    elif isinstance(condition, Mapping):
        specs = dict(condition)
    elif isinstance(condition, (list, tuple)) and all(isinstance(c, str) for c in condition):
        if len(set(condition)) != len(condition):
            raise ValueError(f"condition names a variable twice: {list(condition)!r}")
        specs = dict.fromkeys(condition)
    else:
        raise ValueError(
            f"condition must be a variable name, a list of them or a dict name -> values, got "
            f"{condition!r}"
        )
    if not 1 <= len(specs) <= 3:
        raise ValueError(f"condition takes one to three variables, got {len(specs)}")
    result = require_fit(result, "condition")
    design = result.design
    if design is None:
        raise ValueError("plots of predictions need a result fitted from a formula")
    variables = model_variables(design)
    for name in specs:
        if not isinstance(name, str) or name not in variables:
            raise ValueError(
                f"condition: {name!r} is not a variable of the model (variables: "
                f"{', '.join(variables) or 'none'})"
            )
    frame = data_rows(result, "condition")[0]
    at: dict[str, Any] = {}
    for position, (name, spec) in enumerate(specs.items()):
        at[name] = _condition_values(design, frame, name, spec, first=position == 0)
    return datagrid(result, **at), list(specs)


def _condition_values(
    design: DesignInfo, frame: pd.DataFrame, name: str, spec: Any, first: bool
) -> list[Any]:
    series = frame[name]
    reading = next((r for r in design.columns if r.name == name), None)
    numeric = (reading is None or reading.kind == "number") and not _factor_like(
        design, name, series
    )
    if spec is not None and not (isinstance(spec, str) and spec in CONDITION_SHORTCUTS):
        if isinstance(spec, str) and numeric:
            raise ValueError(
                f"condition: the values of numeric {name!r} must be numbers or one of "
                f"{', '.join(map(repr, CONDITION_SHORTCUTS))}, got {spec!r}"
            )
        return list(np.ravel(np.asarray(spec, dtype=object)))
    if not numeric:
        if spec is not None:
            raise ValueError(f"condition: {spec!r} applies to a numeric variable, not {name!r}")
        if reading is not None and reading.levels:
            return list(reading.levels)
        present = series.dropna()
        if isinstance(series.dtype, pd.CategoricalDtype):
            return [c for c in series.dtype.categories if c in set(present)]
        return sorted(pd.unique(present))
    values = np.asarray(read_series(series, reading or ColumnReading(name, "number"), "data"))
    values = values[np.isfinite(values)].astype(np.float64)
    if values.size == 0:
        raise ValueError(f"condition: {name!r} has no value over the fit's rows")
    if spec is None and first:
        if np.all((values == 0.0) | (values == 1.0)):
            return [0.0, 1.0]
        return list(np.linspace(values.min(), values.max(), CONDITION_POINTS))
    if spec is None or spec == "fivenum":
        return list(fivenum(values))
    if spec == "threenum":
        mean, sd = float(values.mean()), float(values.std(ddof=1))
        return [mean - sd, mean, mean + sd]
    if spec == "minmax":
        return [float(values.min()), float(values.max())]
    return list(np.quantile(values, [0.25, 0.5, 0.75]))
