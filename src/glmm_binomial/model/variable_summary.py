"""What a fit remembers of each variable of its fixed part, for reference grids (emmeans).

R's emmeans recovers the model frame to build its reference grid: every factor at its levels,
a numeric variable at its mean over the fit's rows (``cov.reduce = mean``), or at its distinct
values when it has at most two of them (emmeans' default ``cov.keep = "2"``: a 0/1 indicator is
treated as a two-level factor), and the range of a variable sets emtrends' difference step. The
fit keeps no rows, so these facts are taken once from the rows used in the fit (after missing
values were dropped) and stored in DesignInfo.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from glmm_binomial.model.frame import Table, category_labels

__all__ = ["KEEP_DISTINCT", "VariableSummary", "formula_order", "summarize_variables"]

KEEP_DISTINCT = 2
"""A numeric variable with at most this many distinct values is kept at those values in a
reference grid (emmeans' default ``cov.keep = "2"``)."""


@dataclass(frozen=True)
class VariableSummary:
    """One variable of the fixed part over the fit's rows.

    kind "factor": ``levels`` are its levels (categories in order; sorted distinct values of
    text or logical columns). kind "numeric": ``mean``, ``minimum``, ``maximum``, and
    ``levels`` its sorted distinct values when there are at most KEEP_DISTINCT of them (else
    empty)."""

    name: str
    kind: Literal["factor", "numeric"]
    levels: tuple[object, ...] = ()
    mean: float = float("nan")
    minimum: float = float("nan")
    maximum: float = float("nan")


def _summary(name: str, series: pd.Series) -> VariableSummary:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return VariableSummary(name, "factor", category_labels(dtype))
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        try:
            levels = tuple(sorted(pd.unique(series.dropna())))
        except TypeError:  # mixed labels that do not compare: keep their order of appearance
            levels = tuple(pd.unique(series.dropna()))
        return VariableSummary(name, "factor", levels)
    values = series.to_numpy(dtype=np.float64)
    if len(values) == 0:
        return VariableSummary(name, "numeric")
    low, high = float(values.min()), float(values.max())
    # At most two distinct values iff every value is the minimum or the maximum (one pass,
    # no sort); KEEP_DISTINCT is 2.
    kept: tuple[object, ...] = ()
    if low == high:
        kept = (low,)
    elif bool(((values == low) | (values == high)).all()):
        kept = (low, high)
    return VariableSummary(name, "numeric", kept, float(values.mean()), low, high)


def summarize_variables(frame: Table, names: Sequence[str]) -> tuple[VariableSummary, ...]:
    """The summary of each of ``names`` (columns of ``frame``, the fit's complete rows)."""
    return tuple(_summary(name, frame[name]) for name in names if name in frame.columns)


def formula_order(names: set[str] | Sequence[str], *texts: str) -> list[str]:
    """``names`` in order of first appearance in ``texts`` (as R lists a formula's
    variables); names not found come last, sorted."""
    joined = " ".join(texts)

    def position(name: str) -> tuple[int, str]:
        match = re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", joined)
        return (match.start() if match else len(joined), name)

    return sorted(set(names), key=position)
