"""Plots of predictions, slopes and comparisons, as marginaleffects 0.11.0's plot_predictions,
plot_slopes and plot_comparisons make them (matplotlib, the optional extra `plot`).

Two kinds:

- conditional (``condition=``): rows from results.datagrid.condition_grid (the x variable
  over its range or levels, a second variable as colours, a third as panels, every other
  variable at its typical value: a factor, the grouping factors included, at its mode), each
  row's prediction, slope or comparison (predictions / slopes / comparisons with that grid
  as newdata);
- marginal (``by=``): the averages over the fit's rows within the groups of up to three
  columns (avg_predictions / avg_slopes / avg_comparisons).

Numeric x: a line with its Wald band; a factor's: points with interval bars. ``draw=False``
returns the table plotted instead of the figure (marginaleffects' draw = FALSE). Estimates and
SEs are those of the functions named (delta method in the fixed effects; random effects at
their conditional modes unless ``re="exclude"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from glmm_binomial.results.average_predictions import avg_predictions, predictions
from glmm_binomial.results.datagrid import condition_grid
from glmm_binomial.results.plots import effect_plot
from glmm_binomial.results.slopes import avg_comparisons, avg_slopes, comparisons, slopes

__all__ = ["plot_comparisons", "plot_predictions", "plot_slopes"]


def _one_of(condition: Any, by: Any) -> list[str] | None:
    """The by columns (None: a condition is given); exactly one of the two."""
    if (condition is None) == (by is None):
        raise ValueError("give one of condition= (a conditional plot) and by= (averages), not both")
    if by is None:
        return None
    names = [by] if isinstance(by, str) else by
    if (
        not isinstance(names, (list, tuple))
        or not 1 <= len(names) <= 3
        or not all(isinstance(b, str) for b in names)
    ):
        raise ValueError(f"by must be a column name or a list of one to three, got {by!r}")
    return list(names)


def _one_variable(variables: Any, what: str) -> Any:
    if isinstance(variables, str):
        return variables
    if isinstance(variables, Mapping) and len(variables) == 1:
        return dict(variables)
    raise ValueError(
        f"variables: {what} plots one variable (a name"
        + (" or a dict of one name -> change" if what == "plot_comparisons" else "")
        + f"), got {variables!r}"
    )


def _with_condition(table: pd.DataFrame, grid: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The condition's columns of each row's grid row added in front of the estimates."""
    rows = grid.loc[table["row"].to_numpy(), names].reset_index(drop=True)
    return pd.concat([rows, table.drop(columns="row").reset_index(drop=True)], axis=1)


def plot_predictions(
    result: Any,
    condition: Any = None,
    by: Any = None,
    type: str = "response",
    re: Any = "include",
    conf_level: float | None = None,
    draw: bool = True,
) -> Any:
    """Predicted probabilities (``type="link"``: the linear predictor) against a condition
    (module docstring: condition_grid's rows, predictions()) or averaged by the ``by``
    columns (avg_predictions()); the figure, or with ``draw=False`` the table plotted."""
    by_names = _one_of(condition, by)
    if by_names is None:
        grid, names = condition_grid(result, condition)
        table = predictions(result, newdata=grid, type=type, re=re, conf_level=conf_level)
    else:
        names = by_names
        table = avg_predictions(result, by=names, type=type, re=re, conf_level=conf_level)
    if not draw:
        return table
    ylabel = "probability" if type == "response" else "linear predictor"
    return effect_plot(table, names, ylabel, "predictions")


def _effect_table(
    result: Any,
    variable: Any,
    condition: Any,
    by: Any,
    unit: Any,
    average: Any,
    options: dict[str, Any],
) -> tuple[pd.DataFrame, list[str]]:
    """The table a slope or comparison plot draws and its keys: ``unit`` (slopes,
    comparisons) at the condition's rows, or ``average`` (their avg_ forms) by the by
    columns."""
    by_names = _one_of(condition, by)
    if by_names is None:
        grid, names = condition_grid(result, condition)
        raw = unit(result, variable, newdata=grid, **options)
        return _with_condition(raw, grid, names), names
    return average(result, variable, by=by_names, **options), by_names


def plot_slopes(
    result: Any,
    variables: str,
    condition: Any = None,
    by: Any = None,
    type: str = "response",
    re: Any = "include",
    conf_level: float | None = None,
    slope: str = "dydx",
    draw: bool = True,
) -> Any:
    """The slope of the prediction in ``variables`` (one name; a factor: its contrasts, one
    panel each) against a condition (slopes() at condition_grid's rows) or averaged by the
    ``by`` columns (avg_slopes()); the figure, or with ``draw=False`` the table plotted."""
    variable = _one_variable(variables, "plot_slopes")
    options = {"type": type, "re": re, "conf_level": conf_level, "slope": slope}
    table, names = _effect_table(result, variable, condition, by, slopes, avg_slopes, options)
    if not draw:
        return table
    return effect_plot(table, names, f"slope in {variable}", "slopes")


def plot_comparisons(
    result: Any,
    variables: Any,
    condition: Any = None,
    by: Any = None,
    type: str = "response",
    re: Any = "include",
    conf_level: float | None = None,
    comparison: str = "difference",
    draw: bool = True,
) -> Any:
    """The comparison of predictions when ``variables`` changes (one name, or a dict of one
    name -> change as comparisons() takes it; a factor: each contrast in its panel) against a
    condition (comparisons() at condition_grid's rows) or averaged by the ``by`` columns
    (avg_comparisons()); the figure, or with ``draw=False`` the table plotted."""
    variable = _one_variable(variables, "plot_comparisons")
    options = {"type": type, "re": re, "conf_level": conf_level, "comparison": comparison}
    table, names = _effect_table(
        result, variable, condition, by, comparisons, avg_comparisons, options
    )
    if not draw:
        return table
    return effect_plot(table, names, comparison, "comparisons")
