"""Predictions with delta-method SEs in the fixed effects, as R's marginaleffects 0.11.0
makes them for a glmer fit: each row's (predictions) and their averages (avg_predictions),
overall, within by groups, or with every row set to each value of some variables
(standardization, G-computation); the rows, SEs and tables as results.effect_rows makes them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.model.frame import label_key
from glmm_binomial.results.base import ResultBase
from glmm_binomial.results.datagrid import fivenum, model_variables
from glmm_binomial.results.effect_rows import (
    Common,
    Predicted,
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
    variable_specs,
)
from glmm_binomial.results.hypothesis import Tests

__all__ = [
    "GRID_LIMIT",
    "avg_predictions",
    "predictions",
]

FloatArray = NDArray[np.float64]


GRID_LIMIT = 1000
"""Most combinations of values avg_predictions' variables may ask for."""


def _grid_values(result: ResultBase, common: Common, variables: Any) -> dict[str, tuple[Any, ...]]:
    """avg_predictions' variables as {name: values}: a factor at its levels (or those given),
    a numeric variable at the values given or R's fivenum over the rows."""
    if isinstance(variables, Mapping):
        specs = dict(variables)
        names = list(specs)
        if not all(isinstance(name, str) for name in names):
            raise ValueError(f"variables must map variable names to values, got {variables!r}")
        variable_specs(names, common.design, comparison=True)  # checks the names
    else:
        checked = variable_specs(variables, common.design, comparison=True)
        # In the order given: the first varies slowest, as marginaleffects' grid.
        order = [variables] if isinstance(variables, str) else list(variables)
        specs = {name: checked[name] for name in order}
    factors = factor_levels(common.design, list(specs))
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
            values = fivenum(column_numbers(common.rows.frame, common.design, name))
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
    by_names = by_columns(by)
    common = common_inputs(
        result, newdata, by_names, wts, type, re, conf_level, offset, what, tests
    )
    frame = common.rows.frame
    grid = {} if variables is None else _grid_values(result, common, variables)
    names = list(grid)
    combos = list(itertools.product(*(grid[v] for v in names))) if names else [()]
    settings = [Setting(frame.assign(**dict(zip(names, c, strict=True))), "") for c in combos]
    predicted = common.predict(result, settings, type)
    mu = np.concatenate([p.mu for p in predicted])
    jacobian = np.concatenate([p.slope[:, None] * p.x for p in predicted])
    vcov = np.asarray(result.fit_output.vcov_beta, dtype=np.float64)
    beta_draws = posterior_beta(result)
    if not average:
        keys: dict[str, Any] = {"row": np.tile(frame.index.to_numpy(), len(combos))}
        for name in model_variables(common.design):
            if name in frame.columns:
                keys[name] = pd.concat([s.frame[name] for s in settings], ignore_index=True)
        if beta_draws is not None:
            draws = _prediction_draws(result, predicted, beta_draws, type, None)
            table = draws_table(keys, draws, common.level, tests, labelled=())
        else:
            table = effect_table(
                keys,
                mu,
                jacobian,
                vcov,
                common.level,
                tests,
                labelled=(),
                limit=result.fit_output.vcov_limit,
            )
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
                keys[v] = np.tile(by_keys(frame, [v])[v].to_numpy(), len(combos))
        if group_on:
            codes_all, values = group_codes(pd.DataFrame(keys))
        else:
            codes_all, values = np.zeros(n * len(combos), dtype=np.intp), pd.DataFrame(index=[0])
        weights = common.rows.weights
        weights = None if weights is None else np.tile(weights, len(combos))
        columns = {
            v: np.asarray(values[v].astype(object) if v in grid else values[v]) for v in group_on
        }
        if beta_draws is not None:
            groups = (codes_all, len(values), weights)
            draws = _prediction_draws(result, predicted, beta_draws, type, groups)
            table = draws_table(columns, draws, common.level, tests)
        else:
            mean, mean_jacobian = group_means(codes_all, len(values), mu, jacobian, weights)
            table = effect_table(
                columns,
                mean,
                mean_jacobian,
                vcov,
                common.level,
                tests,
                limit=result.fit_output.vcov_limit,
            )
    table.attrs.update(
        {"type": type, "level": common.level, "notes": effect_notes(result, type, common.blocks)}
    )
    return table


def _prediction_draws(
    result: Any,
    predicted: list[Predicted],
    beta_draws: FloatArray,
    type: str,
    groups: tuple[NDArray[np.intp], int, FloatArray | None] | None,
) -> Iterator[FloatArray]:
    """The predictions' posterior draws (rows x draws) setting by setting, or with ``groups``
    (the codes, number and weights of the groups) their group means at once; in blocks of
    DRAW_BLOCK draws."""
    if groups is None:
        for p in predicted:
            shifts = draw_shifts(result, beta_draws)
            yield np.concatenate([mu_draws(p, shift, result, type) for shift in shifts], axis=1)
        return
    codes, n_groups, weights = groups
    blocks = []
    for shift in draw_shifts(result, beta_draws):
        values = np.concatenate([mu_draws(p, shift, result, type) for p in predicted], axis=0)
        blocks.append(group_draw_means(codes, n_groups, values, weights))
    yield np.concatenate(blocks, axis=1)
