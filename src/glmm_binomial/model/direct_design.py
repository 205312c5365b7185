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
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from formulaic import model_matrix
from formulaic.transforms import TRANSFORMS
from numpy.typing import NDArray

from glmm_binomial.model.formula import expression_variables, python_source, r_names
from glmm_binomial.model.frame import Table, as_frame, category_labels
from glmm_binomial.model.r_coding import MATERIALIZER

FloatArray = NDArray[np.float64]

PLAN_CACHE_SIZE = 64
"""Plans kept (one per formula text and column types)."""

PAIR_LEVELS_MAX = 2_500
"""The interaction of two categoricals is built directly when it has at most this many level
pairs (the plan learns each pair's value from one made-up row); larger ones go to formulaic."""


class PlanColumn(NamedTuple):
    """One column of a plan: kind "ones"; "numeric" (column `name`); "expression" (its text
    in `name`); "level" (values[codes of categorical `name`]); "level_times" (that times the
    numeric column `other`: an interaction x:f); "product" (columns `name` times `other`);
    "level_pair" (values[codes of `name`, codes of `other`]: an interaction f:g)."""

    kind: str
    name: str | None = None
    values: FloatArray | None = None
    other: str | None = None


@dataclass(frozen=True)
class DirectPlan:
    """How to build a plain formula's matrix: its columns (PlanColumn), their names (R's
    spelling), formulaic's model spec and the functions an expression may call (formulaic's
    transforms and the caller's context)."""

    columns: tuple[PlanColumn, ...]
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
        return ("categorical", category_labels(dtype), bool(dtype.ordered))
    if isinstance(dtype, np.dtype) and dtype.kind in "fiu":
        return ("numeric", dtype.str)
    return None


def _plain_factors(terms: tuple[Any, ...], frame: Table) -> tuple[list[str], list[str]] | None:
    """The columns and the expressions of a right-hand side whose terms are all plain: a
    column of frame, a Python expression (formulaic's evaluation) of columns of frame, or the
    interaction of two columns; None when some term is not (a longer interaction, one with an
    expression, a name frame lacks)."""
    columns: list[str] = []
    expressions: list[str] = []
    for term in terms:
        found = [f for f in term.factors if str(f.expr) != "1"]
        texts = [str(f.expr) for f in found]
        if len(found) == 2 and all(t in frame.columns for t in texts):
            columns.extend(texts)
            continue
        if len(found) > 1:
            return None
        if not found:
            continue
        if texts[0] in frame.columns:
            columns.append(texts[0])
            continue
        if getattr(found[0].eval_method, "value", None) != "python":
            return None
        variables = expression_variables(texts[0])
        if not variables or any(v not in frame.columns for v in variables):
            return None
        expressions.append(texts[0])
    return list(dict.fromkeys(columns)), list(dict.fromkeys(expressions))


def direct_matrix(
    expr: str, formula: Any, frame: Table, context: dict[str, Any]
) -> tuple[FloatArray, list[str], Any] | None:
    """(matrix, names, spec) of `formula` (formulaic's parsed `expr`) on frame built with numpy
    (module docstring), or None when the formula or the columns are not plain."""
    terms = tuple(formula)
    found = _plain_factors(terms, frame)
    if found is None or frame.shape[0] == 0:
        return None
    variables, expressions = found
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
    for j, column in enumerate(plan.columns):
        kind, name, values, other = column
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
        if kind == "product":
            assert other is not None
            right = frame[other].to_numpy(dtype=np.float64)
            out[:, j] = frame[name].to_numpy(dtype=np.float64) * right
            continue
        assert values is not None
        for categorical in (name, other) if kind == "level_pair" else (name,):
            assert categorical is not None
            if categorical not in codes_of:
                codes = np.asarray(frame[categorical].array.codes, dtype=np.intp)
                if (codes < 0).any():
                    return None  # missing values: formulaic decides what they give
                codes_of[categorical] = codes
        if kind == "level_pair":
            assert other is not None
            out[:, j] = values[codes_of[name], codes_of[other]]
            continue
        out[:, j] = values[codes_of[name]]
        if kind == "level_times":
            assert other is not None
            # One product per row, as formulaic multiplies a term's encoded factor columns.
            out[:, j] *= frame[other].to_numpy(dtype=np.float64)
    return out, list(plan.names), plan.spec


def evaluate_on_columns(text: str, frame: Table, functions: dict[str, Any]) -> Any:
    """Python expression `text` (formula spelling: backticked column names allowed) evaluated
    with frame's columns (pandas Series, as formulaic passes them) and `functions` in scope;
    raises whatever the evaluation raises."""
    source, placeholders = python_source(text)
    namespace = dict(functions)
    for name in expression_variables(text):
        if name in frame.columns:
            namespace[name] = frame[name]
    for placeholder, name in placeholders.items():
        if name in frame.columns:
            namespace[placeholder] = frame[name]
    return eval(source, {"__builtins__": {}}, namespace)  # noqa: S307 - formula text is code


def evaluate_expression(text: str, frame: Table, functions: dict[str, Any]) -> FloatArray | None:
    """A formula factor's Python expression (formulaic's text, as ``I(age ** 2)`` or
    ``log(dose + 1)``) evaluated on frame's columns with `functions` in scope: its values as
    float64, one per row; None when it fails or does not give one number per row (booleans and
    text are factors to formulaic)."""
    try:
        value = evaluate_on_columns(text, frame, functions)
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
    """The plan from formulaic's matrices of a few rows (None when some level of a categorical
    is absent from frame or missing somewhere: formulaic decides then).

    The columns' recipes are read off formulaic's matrix of made-up rows: every numeric column
    1 (a numeric factor's value, and an interaction's numeric part, is then its product's
    other factor alone), each categorical at each of its levels in turn (the others at their
    first). The plan is then checked on frame's own first row and the first row of each level
    of each categorical: it must give formulaic's matrix of those rows exactly."""
    rows = [0]
    level_counts: dict[str, int] = {}
    for name in variables:
        series = frame[name]
        if not isinstance(series.dtype, pd.CategoricalDtype):
            continue
        codes = np.asarray(series.array.codes, dtype=np.intp)
        n_levels = len(series.dtype.categories)
        if (codes < 0).any():
            return None
        present, first = np.unique(codes, return_index=True)
        if present.size != n_levels:
            return None
        level_counts[name] = n_levels
        rows.extend(first.tolist())
    pairs = _categorical_pairs(formula, level_counts)
    if pairs is None:
        return None
    made_up, level_rows, pair_rows = _made_up_rows(
        frame, variables, expressions, level_counts, pairs
    )
    learned = _formulaic_matrix(formula, made_up, context)
    if learned is None:
        return None
    values, spec = learned
    if getattr(spec, "transform_state", None):
        return None
    for text in expressions:
        # An expression formulaic encodes as a factor (factor(k), C(k), a boolean) has levels
        # from the data, not from a dtype: the few rows cannot stand for the whole frame.
        kind = spec.encoder_state.get(text, (None,))[0]
        if getattr(kind, "value", None) != "numerical":
            return None
    columns: list[PlanColumn] = []
    for structure in spec.structure:
        factors = [str(f.expr) for f in structure.term.factors if str(f.expr) != "1"]
        for _ in structure.columns:
            column = _plan_column(
                factors, level_rows, pair_rows, expressions, values[:, len(columns)]
            )
            if column is None:
                return None
            columns.append(column)
    if len(columns) != values.shape[1]:
        return None
    names = tuple(r_names([str(c) for c in spec.column_names]))
    plan = DirectPlan(tuple(columns), names, spec, {**TRANSFORMS, **context})
    # The plan must give formulaic's own values on the rows it was learned from, and on real
    # rows of frame.
    sample = as_frame(frame).iloc[np.unique(np.asarray(rows, dtype=np.intp))]
    for check in (made_up, sample):
        reference = learned if check is made_up else _formulaic_matrix(formula, check, context)
        built = _build(plan, check)
        if reference is None or built is None or not np.array_equal(built[0], reference[0]):
            return None
    return plan


def _categorical_pairs(formula: Any, level_counts: dict[str, int]) -> list[tuple[str, str]] | None:
    """The pairs of categoricals that make up a term of formula (an interaction f:g), each
    once; None when one has more than PAIR_LEVELS_MAX level pairs."""
    pairs: list[tuple[str, str]] = []
    for term in formula:
        names = [str(f.expr) for f in term.factors if str(f.expr) in level_counts]
        if len(names) != 2:
            continue
        first, second = names
        if first == second or (first, second) in pairs or (second, first) in pairs:
            continue
        if level_counts[first] * level_counts[second] > PAIR_LEVELS_MAX:
            return None
        pairs.append((first, second))
    return pairs


def _made_up_rows(
    frame: Table,
    variables: list[str],
    expressions: set[str],
    level_counts: dict[str, int],
    pairs: list[tuple[str, str]],
) -> tuple[pd.DataFrame, dict[str, NDArray[np.intp]], dict[tuple[str, str], NDArray[np.intp]]]:
    """A frame with frame's dtypes: a first row, then for each categorical a block of rows in
    which it takes each of its levels in turn, and for each pair of categoricals a block with
    every pair of their levels; every numeric column 1 and every categorical at level 0
    elsewhere. With the rows of each categorical's block (by level) and of each pair's block
    (levels of the first by levels of the second)."""
    level_rows: dict[str, NDArray[np.intp]] = {}
    pair_rows: dict[tuple[str, str], NDArray[np.intp]] = {}
    start = 1
    for name, count in level_counts.items():
        level_rows[name] = np.arange(start, start + count, dtype=np.intp)
        start += count
    for first, second in pairs:
        shape = (level_counts[first], level_counts[second])
        pair_rows[(first, second)] = np.arange(start, start + shape[0] * shape[1]).reshape(shape)
        start += shape[0] * shape[1]
    n_rows = start
    read = sorted(v for e in expressions for v in expression_variables(e))
    names = list(dict.fromkeys([*variables, *read]))
    data: dict[str, Any] = {}
    for name in names:
        dtype = frame[name].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            codes = np.zeros(n_rows, dtype=np.intp)
            codes[level_rows[name]] = np.arange(level_counts[name])
            for (first, second), rows in pair_rows.items():
                if name == first:
                    codes[rows] = np.arange(rows.shape[0])[:, None]
                elif name == second:
                    codes[rows] = np.arange(rows.shape[1])[None, :]
            data[name] = pd.Categorical.from_codes(codes, dtype=dtype)
        else:
            data[name] = np.ones(n_rows, dtype=dtype)
    return pd.DataFrame(data), level_rows, pair_rows


def _formulaic_matrix(
    formula: Any, frame: pd.DataFrame, context: dict[str, Any]
) -> tuple[FloatArray, Any] | None:
    """formulaic's matrix (2-d) and model spec of formula on frame; None when it fails."""
    try:
        # A probe: made-up rows (every number 1) make a stateful transform such as scale(x)
        # divide 0 by 0; such a plan is discarded and formulaic then builds the whole matrix.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", FutureWarning)
            mm = model_matrix(
                formula,
                frame,
                na_action="ignore",
                context=context,
                output="numpy",
                materializer=MATERIALIZER,
            )
    except Exception:  # noqa: BLE001 - formulaic on the whole frame reports the error
        return None
    values = np.asarray(mm, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    return values, mm.model_spec


def _plan_column(
    factors: list[str],
    level_rows: dict[str, NDArray[np.intp]],
    pair_rows: dict[tuple[str, str], NDArray[np.intp]],
    expressions: set[str],
    learned: FloatArray,
) -> PlanColumn | None:
    """The recipe of one column of a term with these factors, from its values on the made-up
    rows (`learned`); None for a term the plan does not cover."""
    if not factors:
        return PlanColumn("ones")
    if len(factors) == 1:
        (only,) = factors
        if only in level_rows:
            return PlanColumn("level", only, learned[level_rows[only]].copy())
        return PlanColumn("expression" if only in expressions else "numeric", only)
    if len(factors) != 2 or any(f in expressions for f in factors):
        return None
    categorical = [f for f in factors if f in level_rows]
    numeric = [f for f in factors if f not in level_rows]
    if len(categorical) == 2:
        first, second = categorical
        if (first, second) in pair_rows:
            table = learned[pair_rows[(first, second)]]
        elif (second, first) in pair_rows:
            table = learned[pair_rows[(second, first)]].T
        else:
            return None
        return PlanColumn("level_pair", first, np.ascontiguousarray(table), second)
    if len(categorical) == 1:
        values = learned[level_rows[categorical[0]]].copy()
        return PlanColumn("level_times", categorical[0], values, numeric[0])
    return PlanColumn("product", numeric[0], None, numeric[1])
