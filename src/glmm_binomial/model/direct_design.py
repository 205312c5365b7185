"""The design matrix of a formula of plain terms, built with numpy from formulaic's model spec.

formulaic materializes categorical columns through pandas (factorize, dummy frames), which is
most of the cost of building a small model. For a right-hand side whose every term is the
intercept, one numeric column or one categorical column (``age + urban + livch``), each
column of the matrix is a function of one data column: the column itself, or a value per
level of a categorical (its contrast coding, whatever the contrasts). So formulaic is asked
for the matrix of a few rows only, one per level of each categorical (its model spec then
equals the whole frame's: a categorical's levels are its categories, not the values
present), each column's values per level are read off those rows, and the whole matrix is
built by indexing with the categorical codes. The plan (spec, names, per-column recipe) depends
only on the formula text and the columns' types and categories: it is kept for the next build
of the same formula on columns of the same types (refits, bootstrap, power simulations).

Anything else (interactions, transforms such as ``scale(x)`` or ``I(x^2)``, text or logical
columns, missing values) returns None: the caller asks formulaic for the whole matrix. The
result is the same matrix, names and spec as formulaic's (tests/test_direct_design.py).
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from formulaic import model_matrix
from numpy.typing import NDArray

from glmm_binomial.model.formula import r_name
from glmm_binomial.model.frame import Table, as_frame

FloatArray = NDArray[np.float64]

PLAN_CACHE_SIZE = 64
"""Plans kept (one per formula text and column types)."""


@dataclass(frozen=True)
class DirectPlan:
    """How to build a plain formula's matrix: per column, ("ones", None, None), ("numeric",
    column, None) or ("level", column, values per level); the column names (R's spelling)
    and formulaic's model spec."""

    columns: tuple[tuple[str, str | None, FloatArray | None], ...]
    names: tuple[str, ...]
    spec: Any


_PLANS: OrderedDict[tuple[Any, ...], DirectPlan | None] = OrderedDict()
_PLANS_LOCK = threading.Lock()  # fits may run in several threads (Dask workers)


def _column_key(series: pd.Series) -> tuple[Any, ...] | None:
    """What formulaic's coding of a plain column depends on: its categories (and order flag)
    for a categorical, the dtype for a numeric column; None for anything else."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return ("categorical", tuple(dtype.categories.tolist()), bool(dtype.ordered))
    if isinstance(dtype, np.dtype) and dtype.kind in "fiu":
        return ("numeric", dtype.str)
    return None


def _plain_variables(terms: tuple[Any, ...], frame: Table) -> list[str] | None:
    """The columns of a right-hand side whose terms are all plain (intercept, or one factor
    that is a column of frame); None otherwise."""
    names: list[str] = []
    for term in terms:
        factors = list(term.factors)
        if not factors:
            continue
        if len(factors) != 1:
            return None
        text = str(factors[0].expr)
        if text == "1":
            continue
        if text not in frame.columns:
            return None
        names.append(text)
    return names


def direct_matrix(
    expr: str, formula: Any, frame: Table, context: dict[str, Any]
) -> tuple[FloatArray, list[str], Any] | None:
    """(matrix, names, spec) of `formula` (formulaic's parsed `expr`) on frame built with numpy
    (module docstring), or None when the formula or the columns are not plain."""
    terms = tuple(formula)
    variables = _plain_variables(terms, frame)
    if variables is None or frame.shape[0] == 0:
        return None
    keys = []
    for name in variables:
        key = _column_key(frame[name])
        if key is None:
            return None
        keys.append((name, key))
    cache_key = (expr, tuple(keys))
    with _PLANS_LOCK:
        known = cache_key in _PLANS
        plan = _PLANS.get(cache_key)
        if known:
            _PLANS.move_to_end(cache_key)
    if not known:
        plan = _make_plan(formula, frame, variables, context)
        with _PLANS_LOCK:
            _PLANS[cache_key] = plan
            while len(_PLANS) > PLAN_CACHE_SIZE:
                _PLANS.popitem(last=False)
    if plan is None:
        return None
    return _build(plan, frame)


def _build(plan: DirectPlan, frame: Table) -> tuple[FloatArray, list[str], Any] | None:
    n = frame.shape[0]
    out = np.empty((n, len(plan.columns)))
    codes_of: dict[str, NDArray[np.intp]] = {}
    for j, (kind, name, values) in enumerate(plan.columns):
        if kind == "ones":
            out[:, j] = 1.0
            continue
        assert name is not None
        if kind == "numeric":
            out[:, j] = frame[name].to_numpy(dtype=np.float64)
            continue
        assert values is not None
        if name not in codes_of:
            codes = np.asarray(frame[name].array.codes, dtype=np.intp)
            if np.any(codes < 0):
                return None  # missing values: formulaic decides what they give
            codes_of[name] = codes
        out[:, j] = values[codes_of[name]]
    return out, list(plan.names), plan.spec


def _make_plan(
    formula: Any, frame: Table, variables: list[str], context: dict[str, Any]
) -> DirectPlan | None:
    """The plan from formulaic's matrix of a few rows: the first row, and the first row of
    each level of each categorical (a level absent from frame: no plan)."""
    rows = [0]
    level_rows: dict[str, NDArray[np.intp]] = {}
    for name in dict.fromkeys(variables):
        series = frame[name]
        if not isinstance(series.dtype, pd.CategoricalDtype):
            continue
        codes = np.asarray(series.cat.codes.to_numpy(), dtype=np.intp)
        n_levels = len(series.cat.categories)
        if np.any(codes < 0):
            return None
        present, first = np.unique(codes, return_index=True)
        if present.size != n_levels:
            return None
        level_rows[name] = first.astype(np.intp)
        rows.extend(first.tolist())
    sample_rows = np.unique(np.asarray(rows, dtype=np.intp))
    sample = as_frame(frame).iloc[sample_rows]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            mm = model_matrix(formula, sample, na_action="ignore", context=context, output="numpy")
    except Exception:  # noqa: BLE001 - formulaic on the whole frame reports the error
        return None
    spec = mm.model_spec
    if getattr(spec, "transform_state", None):
        return None
    values = np.asarray(mm, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    position = {int(r): i for i, r in enumerate(sample_rows)}
    columns: list[tuple[str, str | None, FloatArray | None]] = []
    for structure in spec.structure:
        factors = [f for f in structure.term.factors if str(f.expr) != "1"]
        for _ in structure.columns:
            j = len(columns)
            if not factors:
                columns.append(("ones", None, None))
            elif str(factors[0].expr) in level_rows:
                var = str(factors[0].expr)
                at = [position[int(r)] for r in level_rows[var]]
                columns.append(("level", var, values[at, j].copy()))
            else:
                columns.append(("numeric", str(factors[0].expr), None))
    if len(columns) != values.shape[1]:
        return None
    plan = DirectPlan(tuple(columns), tuple(r_name(str(c)) for c in spec.column_names), spec)
    # The plan must give formulaic's own values on the rows it was learned from.
    built = _build(plan, sample)
    if built is None or not np.array_equal(built[0], values):
        return None
    return plan
