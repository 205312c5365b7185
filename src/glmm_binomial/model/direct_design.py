"""The design matrix of a formula of plain terms, built with numpy from formulaic's model spec.

formulaic materializes categorical columns through pandas (factorize, dummy frames), which is
most of the cost of building a small model. For a right-hand side whose every term is the
intercept, one numeric column, one categorical column or one stateless expression of numeric
columns (``age + I(age^2) + log(dose) + urban + livch``), each column of the matrix is a
function of the data columns of its own term: the column itself, the expression evaluated on
the columns as formulaic evaluates it (the same pandas Series, formulaic's functions), or a
value per level of a categorical (its contrast coding, whatever the contrasts). So formulaic is
asked for the matrix of a few rows only, one per level of each categorical (its model spec then
equals the whole frame's: a categorical's levels are its categories, not the values
present), each column's values per level are read off those rows, and the whole matrix is
built by indexing with the categorical codes. The plan (spec, names, per-column recipe) depends
only on the formula text and the columns' types and categories: it is kept for the next build
of the same formula on columns of the same types (refits, bootstrap, power simulations).

Anything else (interactions, stateful transforms such as ``scale(x)`` or ``poly(x, 2)``,
expressions giving anything but numbers, text or logical columns, missing values) returns
None: the caller asks formulaic for the whole matrix. The
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
from formulaic.transforms import TRANSFORMS
from numpy.typing import NDArray

from glmm_binomial.model.formula import expression_variables, python_source, r_name
from glmm_binomial.model.frame import Table, as_frame

FloatArray = NDArray[np.float64]

PLAN_CACHE_SIZE = 64
"""Plans kept (one per formula text and column types)."""


@dataclass(frozen=True)
class DirectPlan:
    """How to build a plain formula's matrix: per column, ("ones", None, None), ("numeric",
    column, None), ("expression", its text, None) or ("level", column, values per level); the
    column names (R's spelling), formulaic's model spec and the functions an expression may
    call (formulaic's transforms and the caller's context)."""

    columns: tuple[tuple[str, str | None, FloatArray | None], ...]
    names: tuple[str, ...]
    spec: Any
    functions: dict[str, Any]


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


def _plain_factors(terms: tuple[Any, ...], frame: Table) -> list[tuple[str, str]] | None:
    """(kind, text) of the factor of each term of a right-hand side whose terms are all plain:
    ("column", name) for a column of frame, ("expression", text) for a Python expression
    (formulaic's evaluation) of columns of frame; None when some term is not plain (an
    interaction, or a name frame lacks). The intercept is left out."""
    factors: list[tuple[str, str]] = []
    for term in terms:
        found = list(term.factors)
        if not found:
            continue
        if len(found) != 1:
            return None
        text = str(found[0].expr)
        if text == "1":
            continue
        if text in frame.columns:
            factors.append(("column", text))
            continue
        if getattr(found[0].eval_method, "value", None) != "python":
            return None
        variables = expression_variables(text)
        if not variables or any(v not in frame.columns for v in variables):
            return None
        factors.append(("expression", text))
    return factors


def direct_matrix(
    expr: str, formula: Any, frame: Table, context: dict[str, Any]
) -> tuple[FloatArray, list[str], Any] | None:
    """(matrix, names, spec) of `formula` (formulaic's parsed `expr`) on frame built with numpy
    (module docstring), or None when the formula or the columns are not plain."""
    terms = tuple(formula)
    factors = _plain_factors(terms, frame)
    if factors is None or frame.shape[0] == 0:
        return None
    variables = [text for kind, text in factors if kind == "column"]
    expressions = [text for kind, text in factors if kind == "expression"]
    keys = []
    for name in variables:
        key = _column_key(frame[name])
        if key is None:
            return None
        keys.append((name, key))
    for text in expressions:
        # An expression reads numeric columns only (its value is then a number per row).
        for name in sorted(expression_variables(text)):
            key = _column_key(frame[name])
            if key is None or key[0] != "numeric":
                return None
            keys.append((name, key))
    cache_key = (expr, tuple(keys))
    with _PLANS_LOCK:
        known = cache_key in _PLANS
        plan = _PLANS.get(cache_key)
        if known:
            _PLANS.move_to_end(cache_key)
    if not known:
        plan = _make_plan(formula, frame, variables, set(expressions), context)
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
        if kind == "expression":
            evaluated = evaluate_expression(name, frame, plan.functions)
            if evaluated is None:
                return None  # not numbers: formulaic decides what they give
            out[:, j] = evaluated
            continue
        assert values is not None
        if name not in codes_of:
            codes = np.asarray(frame[name].array.codes, dtype=np.intp)
            if np.any(codes < 0):
                return None  # missing values: formulaic decides what they give
            codes_of[name] = codes
        out[:, j] = values[codes_of[name]]
    return out, list(plan.names), plan.spec


def evaluate_expression(text: str, frame: Table, functions: dict[str, Any]) -> FloatArray | None:
    """A formula factor's Python expression (formulaic's text, as ``I(age ** 2)`` or
    ``log(dose + 1)``) evaluated on frame's columns (pandas Series, as formulaic passes them)
    with `functions` in scope: its values as float64, one per row; None when it fails or does
    not give one number per row (booleans and text are factors to formulaic)."""
    source, placeholders = python_source(text)
    namespace = dict(functions)
    for name in expression_variables(text):
        if name in frame.columns:
            namespace[name] = frame[name]
    for placeholder, name in placeholders.items():
        namespace[placeholder] = frame[name]
    try:
        value = eval(source, {"__builtins__": {}}, namespace)  # noqa: S307 - formula text is code
    except Exception:  # noqa: BLE001 - formulaic on the whole frame reports the error
        return None
    values = np.asarray(value)
    if values.shape != (frame.shape[0],) or values.dtype.kind not in "iuf":
        return None
    return np.asarray(values, dtype=np.float64)


def _make_plan(
    formula: Any,
    frame: Table,
    variables: list[str],
    expressions: set[str],
    context: dict[str, Any],
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
    for text in expressions:
        # An expression formulaic encodes as a factor (factor(k), C(k), a boolean) has levels
        # from the data, not from a dtype: the few rows cannot stand for the whole frame.
        kind = spec.encoder_state.get(text, (None,))[0]
        if getattr(kind, "value", None) != "numerical":
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
            elif str(factors[0].expr) in expressions:
                columns.append(("expression", str(factors[0].expr), None))
            else:
                columns.append(("numeric", str(factors[0].expr), None))
    if len(columns) != values.shape[1]:
        return None
    names = tuple(r_name(str(c)) for c in spec.column_names)
    plan = DirectPlan(tuple(columns), names, spec, {**TRANSFORMS, **context})
    # The plan must give formulaic's own values on the rows it was learned from.
    built = _build(plan, sample)
    if built is None or not np.array_equal(built[0], values):
        return None
    return plan
