"""The learning pass of a Dask fit: one pass over the partitions finds what every partition's
design must share, and returns it as the fit's DesignInfo (model.design).

Each partition is summarized (rows, distinct values of factor columns, distinct combinations
of grouping variables, whether object columns read as numbers, a few rows); the summaries are
merged in a tree on the workers, neighbours first, so partition order is kept and the client
never holds every partition's labels at once. From the merged summary come the levels of the
grouping factors (coded as design.py codes them, so with the in-memory fit's order and R's
as.character keys), the levels of factor columns (so every partition's fixed-effects matrix
has the same columns, from one formulaic model spec learned on a few rows coded as every
partition will be), the response's two levels when it is a factor, which object columns are
numbers, the partitioning factor and the factors nested in or crossed with it.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.distributed.crossed import crossed_plan
from glmm_binomial.model.design import (
    DesignInfo,
    RandomSpec,
    check_width,
    factor_response_levels,
    group_codes,
    value_variables,
)
from glmm_binomial.model.formula import ParsedFormula
from glmm_binomial.model.frame import read_as_numbers
from glmm_binomial.model.transforms import materialize

FloatArray = NDArray[np.float64]
LOG = logging.getLogger(__name__)

MERGE_FAN_IN = 8
"""Partition summaries merged per task in the learning pass's tree."""


@dataclass(frozen=True)
class Learned:
    """What the learning pass found: the design every partition is built from (DesignInfo:
    its kept_columns are not known yet), the variable the rows are shuffled on, the grouping
    factors crossed with it, the rows of data and its complete rows, and the columns used."""

    design: DesignInfo
    partition_variable: str
    crossed_groups: list[tuple[str, ...]]
    n_rows: int
    n_complete: int
    used: list[str]


def learn(
    dask: Any,
    client: Any,
    parsed: ParsedFormula,
    data: Any,
    weights: str | None,
    offset: str | None,
    nesting: tuple[list[str], list[tuple[str, ...]]],
) -> Learned:
    """The learning pass over `data` (a Dask DataFrame) for the formula; weights and offset:
    column names; nesting: nesting_plan(parsed)."""
    candidates, to_check = nesting
    used = list(dict.fromkeys([*parsed.variables, *(c for c in (weights, offset) if c)]))
    dtypes = data.dtypes
    response_vars: set[str] = set()
    response = parsed.response
    for expr in (response.successes, response.failures):
        if expr:
            response_vars.update(
                v for v in parsed.variables if re.search(rf"\b{re.escape(v)}\b", expr)
            )
    group_vars = list(dict.fromkeys(v for term in parsed.random for v in term.group))
    factor_vars = [
        v
        for v in parsed.variables
        if v not in response_vars and v not in group_vars and _is_factor(dtypes[v])
    ]
    simple_factor_response = (
        response.kind != "cbind"
        and response.successes in [str(c) for c in data.columns]
        and not pd.api.types.is_numeric_dtype(dtypes[response.successes])
    )
    # Object columns whose values enter the model are numbers when every value reads as one
    # (as in memory, frame.numbers_as_numeric); the learning pass finds out.
    object_vars = [
        v
        for v in factor_vars
        if pd.api.types.is_object_dtype(dtypes[v]) and v in value_variables(parsed)
    ]

    # One task per partition, combined on the client.
    value_vars = list(factor_vars)
    if simple_factor_response:
        value_vars.append(response.successes)
    combos = list(dict.fromkeys(term.group for term in parsed.random))
    pairs = [(c, g) for c in candidates for g in to_check if c not in g]
    summarize = dask.delayed(_summarize, pure=True)
    merge = dask.delayed(_merge, pure=True)
    started = time.perf_counter()
    level = [summarize(p, value_vars, combos, pairs, object_vars) for p in data[used].to_delayed()]
    # Merged in a tree on the workers, neighbours first (partition order is kept): at a million
    # groups each partition's distinct labels are most of them, too many to gather at once.
    while len(level) > 1:
        level = [merge(level[i : i + MERGE_FAN_IN]) for i in range(0, len(level), MERGE_FAN_IN)]
    summary = client.compute(level[0]).result()
    learned = _combine(summary, pairs)
    numeric_columns = tuple(v for v in object_vars if summary[f"numeric:{v}"])
    factor_vars = [v for v in factor_vars if v not in numeric_columns]
    LOG.info("learning pass: %.1f s", time.perf_counter() - started)

    partition_variable = None
    for c in candidates:
        if all(c in g or learned[f"nested:{c}:{g}"] <= 1 for g in to_check):
            partition_variable = c
            break
    crossed_groups: list[tuple[str, ...]] = []
    if partition_variable is None:
        # Factors crossed with the partitioning one: their random effects are global
        # (crossed.py).
        partition_variable, crossed_groups = crossed_plan(candidates, to_check, learned)
    # The levels present, in category order for a categorical (R's droplevels), else sorted.
    categories = {v: _sorted_levels(learned[f"unique:{v}"]) for v in factor_vars}
    response_levels = None
    if simple_factor_response:
        present = learned[f"unique:{response.successes}"]
        dtype = dtypes[response.successes]
        if isinstance(dtype, pd.CategoricalDtype) and dtype.categories is not None:
            present = pd.Series(pd.Categorical(present, categories=dtype.categories))
        response_levels = factor_response_levels(present, response.successes)
    n_complete = int(learned["complete"])
    if n_complete < 2:
        raise ValueError(f"fewer than two complete rows in data for formula '{parsed.text}'")

    # The model specs: formulaic learns the columns from a few rows coded as every partition
    # will be (the levels fixed above).
    sample = learned["sample"].copy()
    for column in numeric_columns:
        numbers = read_as_numbers(sample[column])
        if numbers is not None:
            sample[column] = numbers
    for column, levels in categories.items():
        sample[column] = pd.Categorical(sample[column], categories=levels)
    if response_levels is not None:
        name = response.successes
        sample[name] = (sample[name] == response_levels[1]).astype(np.float64)
    _check_widths(parsed, categories, sample, n_complete)
    fixed_spec = _spec(parsed.fixed, sample, "fixed-effects term")
    offset_specs = tuple(_spec(f"0 + {expr}", sample, f"offset({expr})") for expr in parsed.offsets)
    random_specs = []
    for term in parsed.random:
        spec = (
            None
            if term.expr == "1"
            else _spec(term.expr, sample, f"random-effect term {term.text}")
        )
        group = _group_spec(term, spec, learned[f"combos:{term.group}"])
        if len(group.levels) < 2:
            raise ValueError(
                f"grouping factor '{':'.join(term.group)}' in {term.text} has a single level; "
                "a random effect needs at least two groups"
            )
        random_specs.append(group)
    design = DesignInfo(
        formula=parsed,
        fixed_spec=fixed_spec,
        random_specs=tuple(random_specs),
        n_dropped=int(learned["rows"]) - n_complete,
        response_name=response.successes,
        offset_specs=offset_specs,
        offset_source="none" if offset is None else "column",
        offset_column=offset,
        numeric_columns=numeric_columns,
        response_levels=response_levels,
        weights_column=weights,
    )
    return Learned(
        design, partition_variable, crossed_groups, int(learned["rows"]), n_complete, used
    )


def _is_factor(dtype: Any) -> bool:
    return not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def nesting_plan(parsed: ParsedFormula) -> tuple[list[str], list[tuple[str, ...]]]:
    """Candidates for the partitioning variable and the grouping factors whose nesting in it
    must be checked on the data (empty when the formula shows it, as in (1 | g/h))."""
    groups = [term.group for term in parsed.random]
    common = [v for v in groups[0] if all(v in g for g in groups)]
    if common:
        return common[:1], []
    candidates = list(dict.fromkeys(g[0] for g in groups if len(g) == 1))
    if not candidates:
        raise not_decomposable(
            "no grouping variable is shared by every term, and none stands alone"
        )
    return candidates, groups


def _sorted_levels(values: Any) -> list[Any]:
    """Levels in the order pandas.factorize(sort=True) gives them (as formulaic codes a factor
    column)."""
    return list(pd.factorize(pd.Series(values), sort=True)[1])


def _group_spec(term: Any, spec: Any, combos: pd.DataFrame) -> RandomSpec:
    """The levels of a grouping factor over the whole data set, from its distinct combinations
    of values: design.group_codes on them gives the levels, level keys (R's as.character) and
    order of the in-memory fit, since these depend only on the set of values present."""
    _, levels, variable_keys, present = group_codes(combos.reset_index(drop=True), term.group)
    return RandomSpec(term, spec, levels, variable_keys, present)


def _summarize(
    frame: pd.DataFrame,
    value_vars: list[str],
    combos: list[tuple[str, ...]],
    nesting: list[tuple[str, tuple[str, ...]]],
    object_vars: list[str],
) -> dict[str, Any]:
    """What the learning pass needs from one partition: row counts, the distinct values of
    factor and grouping columns, distinct combinations of multi-variable grouping factors and
    of (grouping factor, candidate partitioning variable), whether each object column reads as
    numbers, and a few complete rows."""
    complete = frame.dropna()
    out: dict[str, Any] = {"rows": len(frame), "complete": len(complete)}
    out["sample"] = complete.head(5)
    for v in object_vars:
        column = complete[v]
        out[f"numeric:{v}"] = len(column) == 0 or read_as_numbers(column) is not None
    for v in value_vars:
        out[f"unique:{v}"] = pd.Series(complete[v].unique())
    for g in combos:
        out[f"combos:{g}"] = complete[list(g)].drop_duplicates()
    for c, g in nesting:
        out[f"nested:{c}:{g}"] = complete[[*g, c]].drop_duplicates()
    return out


def _merge(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Summaries of neighbouring partitions as one (distinct values in order of appearance)."""
    merged: dict[str, Any] = {}
    for key in summaries[0]:
        values = [s[key] for s in summaries]
        if key in ("rows", "complete"):
            merged[key] = sum(values)
        elif key == "sample":
            merged[key] = pd.concat(values).head(5)
        elif key.startswith("numeric:"):
            merged[key] = all(values)
        elif key.startswith("unique:"):
            merged[key] = pd.Series(pd.concat(values).unique())
        else:  # combos, nesting pairs
            merged[key] = pd.concat(values).drop_duplicates()
    return merged


def _combine(summary: dict[str, Any], nesting: list[tuple[str, tuple[str, ...]]]) -> dict[str, Any]:
    """What the learning pass found, from the merged summary of all partitions."""
    learned = dict(summary)
    for c, g in nesting:
        key = f"nested:{c}:{g}"
        pairs = summary[key]
        # The most values of c within one level of g (1: g is nested in c).
        learned[key] = int(pairs.groupby(list(g)).size().max()) if len(pairs) else 0
    return learned


def _check_widths(
    parsed: ParsedFormula, categories: dict[str, list[Any]], sample: pd.DataFrame, rows: int
) -> None:
    """design.check_width (a design too wide to build is refused, with advice) on a stand-in
    frame holding every level of each factor column: the width depends only on the numbers of
    levels, which the learning pass knows."""
    size = max([len(sample), *(len(levels) for levels in categories.values())])
    stand_in = pd.DataFrame({c: np.resize(sample[c].to_numpy(), size) for c in sample.columns})
    for column, levels in categories.items():
        stand_in[column] = np.resize(np.asarray(levels, dtype=object), size)
    check_width(parsed.fixed, stand_in, "fixed-effects design", rows)
    for term in parsed.random:
        if term.expr != "1":
            check_width(term.expr, stand_in, f"random-effect term {term.text}", rows)


def _spec(expr: str, frame: pd.DataFrame, what: str) -> Any:
    spec = materialize(expr, frame, what)[2]
    if getattr(spec, "transform_state", None):
        raise ValueError(
            f"{what} '{expr}' uses a transform that learns from the data "
            f"({', '.join(spec.transform_state)}), which a Dask fit cannot reproduce from one "
            "pass; add the transformed column to the frame first, or fit in memory"
        )
    return spec


def not_decomposable(detail: str) -> ValueError:
    return ValueError(
        f"this model does not decompose over partitions of a Dask DataFrame: {detail}. "
        "Every grouping factor must be nested in one outermost factor (random slopes allowed) "
        "or crossed with it (method='laplace', a few thousand random effects at most). "
        "Fit it in memory instead: glmm_binomial.fit(formula, ddf.compute())"
    )
