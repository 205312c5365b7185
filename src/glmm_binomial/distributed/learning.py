"""The learning pass of a Dask fit: one pass over the partitions finds what every partition's
design must share, and returns it as the fit's DesignInfo (model.design).

Each partition is summarized (rows, distinct values of factor columns, distinct combinations
of grouping variables, the traits of each column the model reads values from (frame.py's
reader policy: numbers, logical or labels), a few rows); the summaries are
merged in a tree on the workers, neighbours first, so partition order is kept and the client
never holds every partition's labels at once. From the merged summary come the levels of the
grouping factors (coded as design.py codes them, so with the in-memory fit's order and R's
as.character keys), the levels of factor columns (so every partition's fixed-effects matrix
has the same columns, from one formulaic model spec learned on a few rows coded as every
partition will be), the response's two levels when it is a factor, how each column is read
(frame.ColumnReading, as in memory), the partitioning factor and the factors nested in or
crossed with it.
"""

from __future__ import annotations

import functools
import logging
import operator
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
    factor_terms,
    group_codes,
    text_number_warning,
    value_variables,
)
from glmm_binomial.model.formula import ParsedFormula
from glmm_binomial.model.frame import (
    ColumnReading,
    column_kind,
    column_traits,
    factor_levels,
    label_keys,
    read_like,
    too_few_rows_message,
)
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
    # Every column whose values enter the model is read by frame.py's reader policy, decided
    # on the traits of its values in all partitions (the learning pass), as in memory.
    read_vars = value_variables(parsed)

    # One task per partition, combined on the client.
    value_vars = list(factor_vars)
    if simple_factor_response:
        value_vars.append(response.successes)
    combos = list(dict.fromkeys(term.group for term in parsed.random))
    pairs = [(c, g) for c in candidates for g in to_check if c not in g]
    summarize = dask.delayed(_summarize, pure=True)
    merge = dask.delayed(_merge, pure=True)
    started = time.perf_counter()
    level = [summarize(p, value_vars, combos, pairs, read_vars) for p in data[used].to_delayed()]
    # Merged in a tree on the workers, neighbours first (partition order is kept): at a million
    # groups each partition's distinct labels are most of them, too many to gather at once.
    while len(level) > 1:
        level = [merge(level[i : i + MERGE_FAN_IN]) for i in range(0, len(level), MERGE_FAN_IN)]
    summary = client.compute(level[0]).result()
    learned = _combine(summary, pairs)
    terms = factor_terms(parsed)
    kinds = {v: column_kind(summary[f"traits:{v}"], v in terms, v) for v in read_vars}
    factor_kinds = ("factor", "logical_factor")
    factor_vars = [v for v in factor_vars if kinds[v] in factor_kinds]
    simple_factor_response = simple_factor_response and kinds[response.successes] in factor_kinds
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
    # The levels present: in category order for a categorical (R's droplevels), else the
    # labels' keys sorted as text (frame.factor_levels), as the in-memory fit codes them.
    categories = {
        v: _sorted_levels(learned[f"unique:{v}"])
        if isinstance(dtypes[v], pd.CategoricalDtype)
        else list(factor_levels(learned[f"unique:{v}"], logical=kinds[v] == "logical_factor"))
        for v in factor_vars
    }
    readings = tuple(ColumnReading(v, kinds[v], tuple(categories.get(v, ()))) for v in read_vars)
    # Text almost surely meant as numbers, warned of as in memory (design.reading_warnings; the
    # rows holding a stray label are not counted here).
    found = (
        text_number_warning(v, categories[v])
        for v in factor_vars
        if kinds[v] == "factor" and not isinstance(dtypes[v], pd.CategoricalDtype)
    )
    reading = [warning for warning in found if warning is not None]
    response_levels = None
    if simple_factor_response:
        present = learned[f"unique:{response.successes}"]
        dtype = dtypes[response.successes]
        if isinstance(dtype, pd.CategoricalDtype) and dtype.categories is not None:
            present = pd.Series(pd.Categorical(present, categories=dtype.categories))
        response_levels = factor_response_levels(present, response.successes)
    n_complete = int(learned["complete"])
    if n_complete < 2:
        missing = {str(k): int(v) for k, v in learned["missing"].items() if v}
        raise ValueError(too_few_rows_message(parsed.text, int(learned["rows"]), missing))

    # The model specs: formulaic learns the columns from a few rows coded as every partition
    # will be (the levels fixed above).
    sample = read_like(learned["sample"].copy(), readings, "data")
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
        columns=readings,
        response_levels=response_levels,
        weights_column=weights,
        warnings=tuple(reading),
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
    read_vars: list[str],
) -> dict[str, Any]:
    """What the learning pass needs from one partition: row counts, the distinct values of
    factor and grouping columns, distinct combinations of multi-variable grouping factors and
    of (grouping factor, candidate partitioning variable), the traits of each column in
    read_vars (frame.column_traits, on all rows as in memory), and a few complete rows."""
    complete = frame.dropna()
    out: dict[str, Any] = {
        "rows": len(frame),
        "complete": len(complete),
        "missing": frame.isna().sum(),
    }
    out["sample"] = complete.head(5)
    for v in read_vars:
        out[f"traits:{v}"] = column_traits(frame[v])
    for v in value_vars:
        out[f"unique:{v}"] = pd.Series(complete[v].unique())
    for g in combos:
        out[f"combos:{g}"] = complete[list(g)].drop_duplicates()
    for c, g in nesting:
        # Labels as R's as.character (1 and "1" one level), as the levels are coded.
        pairs = complete[[*g, c]]
        keyed = pd.DataFrame({v: label_keys(pairs[v].to_numpy()) for v in pairs.columns})
        out[f"nested:{c}:{g}"] = keyed.drop_duplicates()
    return out


def _merge(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Summaries of neighbouring partitions as one (distinct values in order of appearance)."""
    merged: dict[str, Any] = {}
    for key in summaries[0]:
        values = [s[key] for s in summaries]
        if key in ("rows", "complete", "missing"):  # counts (missing: per column)
            merged[key] = sum(values)
        elif key == "sample":
            merged[key] = pd.concat(values).head(5)
        elif key.startswith("traits:"):
            merged[key] = functools.reduce(operator.and_, values)
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
    # relevel() of a factor column keeps nothing (its levels are the column's, which every
    # partition is read in); of factor(x) it keeps x's levels, and factor(x) is refused.
    learned = [
        name
        for name, state in (getattr(spec, "transform_state", None) or {}).items()
        if state or not str(name).startswith("relevel(")
    ]
    if learned:
        raise ValueError(
            f"{what} '{expr}' uses a transform that learns from the data "
            f"({', '.join(learned)}), which a Dask fit cannot reproduce from one "
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
