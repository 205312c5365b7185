"""The learning pass of a Dask fit (distributed.py): one pass over the partitions finds what
every partition's design must share.

Each partition is summarized (rows, distinct values of factor columns, distinct combinations
of grouping variables, whether object columns read as numbers, a few rows); the summaries are
merged in a tree on the workers, neighbours first, so partition order is kept and the client
never holds every partition's labels at once. From the merged summary come the levels of the
grouping factors (coded as design.py codes them), the partitioning factor and the factors
nested in or crossed with it, and the formulaic model specs every partition evaluates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.distributed.result import _rowless_model
from glmm_binomial.model.data import RandomBlock
from glmm_binomial.model.design import DesignInfo, RandomSpec, check_width, group_codes
from glmm_binomial.model.formula import ParsedFormula, r_name
from glmm_binomial.model.frame import read_as_numbers
from glmm_binomial.model.transforms import FORMULA_CONTEXT, materialize
from glmm_binomial.model.validation import check_independent_terms

FloatArray = NDArray[np.float64]

MERGE_FAN_IN = 8
"""Partition summaries merged per task in the learning pass's tree."""


def _nesting_plan(parsed: ParsedFormula) -> tuple[list[str], list[tuple[str, ...]]]:
    """Candidates for the partitioning variable and the grouping factors whose nesting in it
    must be checked on the data (empty when the formula shows it, as in (1 | g/h))."""
    groups = [term.group for term in parsed.random]
    common = [v for v in groups[0] if all(v in g for g in groups)]
    if common:
        return common[:1], []
    candidates = list(dict.fromkeys(g[0] for g in groups if len(g) == 1))
    if not candidates:
        raise _not_decomposable(
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


def _check_vb_terms(
    parsed: ParsedFormula,
    fixed_spec: Any,
    random_specs: tuple[Any, ...],
    group_specs: tuple[RandomSpec, ...],
    sample: pd.DataFrame,
) -> None:
    """validation.check_independent_terms before any partition is built: method "vb_meanfield"
    fits one-column terms only, and the message says how to write the user's term as such."""
    blocks = []
    for term, spec, group in zip(parsed.random, random_specs, group_specs, strict=True):
        names = ["(Intercept)"] if spec is None else _matrix(spec, sample, term.text)[1]
        blocks.append(
            RandomBlock(
                ":".join(term.group),
                tuple(names),
                np.zeros(0, dtype=np.intp),
                group.levels,
                np.zeros((0, len(names))),
            )
        )
    info = DesignInfo(parsed, fixed_spec, group_specs, 0, parsed.response.successes)
    check_independent_terms(
        _rowless_model((), tuple(blocks), log_binomial_constant=0.0, rows=0), info
    )


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


def _not_decomposable(detail: str) -> ValueError:
    return ValueError(
        f"this model does not decompose over partitions of a Dask DataFrame: {detail}. "
        "Every grouping factor must be nested in one outermost factor (random slopes allowed) "
        "or crossed with it (method='laplace', a few thousand random effects at most). "
        "Fit it in memory instead: glmm_binomial.fit(formula, ddf.compute())"
    )


def _matrix(spec: Any, frame: pd.DataFrame, what: str) -> tuple[FloatArray, list[str]]:
    """A partition's matrix from the model spec learned on the client (transforms.py's
    evaluation context, as the in-memory fit)."""
    try:
        matrix = spec.get_model_matrix(frame, na_action="raise", context=FORMULA_CONTEXT)
    except Exception as exc:  # noqa: BLE001 - formulaic raises many types
        raise ValueError(f"cannot build {what}: {exc}") from None
    return np.asarray(matrix, dtype=np.float64), [r_name(str(c)) for c in matrix.columns]
