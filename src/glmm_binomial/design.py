"""From a parsed lme4 formula and a DataFrame to ModelData, and back again for new data.

This is the one place where data frames meet the model: it reads the frame as R would
(frame.py: object columns of numbers are numbers, unused levels dropped), drops incomplete rows
(as R's na.omit), builds the response (0/1, logical, two-level factor, proportion with weights,
or cbind), asks formulaic for the fixed-effects matrix (aliased columns dropped, as lme4 does),
the formula's offset terms and each random term's columns, and codes the grouping factors.
``DesignInfo`` keeps what is needed to rebuild the same matrices for new data: formulaic's model
specs, which re-apply stateful transforms (scale, center, poly, bs) with the fit's parameters.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg
from formulaic import Formula, model_matrix
from formulaic.errors import DataMismatchWarning
from formulaic.transforms import C, basis_spline, stateful_transform
from numpy.typing import NDArray

from glmm_binomial.diagnostics import FitWarning, NewLevelsWarning, RankDeficiencyWarning
from glmm_binomial.formula import (
    ParsedFormula,
    RandomTerm,
    clean_message,
    expression_variables,
    parse_formula,
    python_source,
    r_name,
)
from glmm_binomial.frame import (
    as_pandas,
    drop_unused_categories,
    factor_codes,
    label_keys,
    match_codes,
    numbers_as_numeric,
)
from glmm_binomial.model import LARGEST_VALUE, ModelData, RandomBlock

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

MAX_DESIGN_COLUMNS = 10_000
"""Widest design (fixed-effects or one random term's columns) built; wider ones are refused."""

MAX_DESIGN_VALUES = 200_000_000
"""Largest rows x columns of a design built (1.6 GB of float64); larger ones are refused."""

ALIAS_TOLERANCE = 1e-7
"""A column whose part not explained by the columns before it has a norm below this fraction of
its own norm is aliased and dropped (R's ``qr()`` tolerance, as lme4's rank check uses)."""


@stateful_transform
def r_bs(
    x: Any,
    df: int | None = None,
    knots: Any = None,
    degree: int = 3,
    include_intercept: bool = False,
    lower_bound: float | None = None,
    upper_bound: float | None = None,
    extrapolation: str = "extend",
    _state: dict[str, Any] | None = None,
) -> Any:
    """formulaic's B-spline basis with R's default for values beyond the fit's boundary knots:
    the end polynomial pieces are extended (``splines::predict.bs``), where formulaic raises."""
    return basis_spline(
        x,
        df=df,
        knots=knots,
        degree=degree,
        include_intercept=include_intercept,
        lower_bound=lower_bound,
        upper_bound=upper_bound,
        extrapolation=extrapolation,
        _state={} if _state is None else _state,
    )


FORMULA_CONTEXT: dict[str, Any] = {
    "bs": r_bs,
    "factor": C,
    "as_factor": C,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "log1p": np.log1p,
    "expm1": np.expm1,
}
"""Names R users write in formulas that formulaic does not define (``factor(x)`` is ``C(x)``)."""

# Functions a response expression may call, e.g. ``I(y == 1)`` or ``cbind(k, log(n) - k)``.
_RESPONSE_FUNCTIONS: dict[str, Any] = {
    "I": lambda value: value,
    "log": np.log,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "round": np.round,
    "np": np,
    "numpy": np,
}


@dataclass(frozen=True)
class RandomSpec:
    """How to rebuild one random block for new data.

    ``variable_keys`` holds, per grouping variable, the keys (R's as.character) of its levels in
    the fit; ``present`` the sorted mixed-radix codes of the level combinations the fit saw (the
    block's levels, in order)."""

    term: RandomTerm
    model_spec: Any
    levels: tuple[object, ...]
    variable_keys: tuple[NDArray[np.str_], ...] = ()
    present: IntArray | None = None


@dataclass(frozen=True)
class DesignInfo:
    """What a fitted model remembers of its formula and data.

    ``kept_columns`` indexes the columns of ``fixed_spec``'s matrix that the model uses (aliased
    columns dropped, named in ``dropped_columns``); ``offset_specs`` rebuild the formula's
    ``offset(...)`` terms; ``offset_source`` says where the ``offset=`` argument came from: a
    column of data (``offset_column``), values (new data must supply them) or nothing."""

    formula: ParsedFormula
    fixed_spec: Any
    random_specs: tuple[RandomSpec, ...]
    n_dropped: int
    response_name: str
    offset_specs: tuple[Any, ...] = ()
    offset_source: Literal["none", "column", "values"] = "none"
    offset_column: str | None = None
    kept_columns: tuple[int, ...] | None = None
    dropped_columns: tuple[str, ...] = ()
    warnings: tuple[FitWarning, ...] = ()


@dataclass(frozen=True)
class NewDesign:
    """The design of new data: rows with every needed value (``complete``, a mask over the rows
    of new data) and, for those rows, X, the offset and per random block (codes, Z); codes are
    -1 for levels the fit has not seen."""

    x: FloatArray
    offset: FloatArray
    random: list[tuple[IntArray, FloatArray]]
    complete: NDArray[np.bool_]
    index: pd.Index


def _as_frame(data: Any) -> pd.DataFrame:
    return as_pandas(data)


def _row_values(name: str, values: Any, n: int) -> FloatArray | None:
    """An optional per-row numeric argument (weights, offset) as a float array, or None."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have one value per row of data ({n}), got shape {arr.shape}")
    try:
        return np.asarray(pd.to_numeric(pd.Series(arr), errors="raise"), dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be numeric") from None


def _evaluate(expr: str, frame: pd.DataFrame) -> pd.Series:
    """A response expression: a column name, or arithmetic on columns (``size - incidence``,
    ``I(y == 1)``, `` `y.obs` ``)."""
    if expr in frame.columns:
        return frame[expr]
    source, placeholders = python_source(expr)
    namespace: dict[str, Any] = dict(_RESPONSE_FUNCTIONS)
    for name in expression_variables(expr):
        if name in frame.columns:
            namespace[name] = frame[name]
    for placeholder, name in placeholders.items():
        if name in frame.columns:
            namespace[placeholder] = frame[name]
    try:
        value = eval(source, {"__builtins__": {}}, namespace)  # noqa: S307 - formula text is code
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"cannot evaluate response expression '{expr}': {exc}") from None
    if not isinstance(value, pd.Series):
        value = pd.Series(np.broadcast_to(np.asarray(value), (len(frame),)), index=frame.index)
    return value


def _first_bad_row(mask: NDArray[np.bool_], index: pd.Index) -> object:
    return index[int(np.flatnonzero(mask)[0])]


def _response(
    parsed: ParsedFormula, frame: pd.DataFrame, weights: FloatArray | None
) -> tuple[FloatArray, FloatArray]:
    """Successes and trials (prior weights folded in)."""
    spec = parsed.response
    if spec.kind == "cbind":
        assert spec.failures is not None
        counts = []
        for role, expr in (("successes", spec.successes), ("failures", spec.failures)):
            values = _evaluate(expr, frame)
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                raise ValueError(f"cbind {role} '{expr}' must be numeric counts")
            arr = values.to_numpy(dtype=np.float64)
            if not np.all(np.isfinite(arr)):
                bad = _first_bad_row(~np.isfinite(arr), frame.index)
                raise ValueError(f"cbind {role} '{expr}' is not finite at row {bad}")
            if np.any(arr < 0):
                bad = _first_bad_row(arr < 0, frame.index)
                what = "successes exceed trials" if role == "failures" else "negative count"
                raise ValueError(f"cbind {role} '{expr}' is negative at row {bad} ({what})")
            counts.append(arr)
        successes, trials = counts[0], counts[0] + counts[1]
        if weights is not None:
            successes, trials = successes * weights, trials * weights
        return successes, trials

    name = spec.successes
    values = _evaluate(name, frame)
    if isinstance(values.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(values):
        if isinstance(values.dtype, pd.CategoricalDtype):
            levels = [c for c in values.cat.categories if c in set(values.dropna())]
        else:
            levels = sorted(pd.unique(values.dropna()), key=str)
        if len(levels) != 2:
            raise ValueError(
                f"response '{name}' must be 0/1, logical or a factor with two levels; "
                f"it has {len(levels)} distinct values"
            )
        y = (values == levels[1]).to_numpy(dtype=np.float64)
    else:
        y = values.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(y)):
            bad = _first_bad_row(~np.isfinite(y), frame.index)
            raise ValueError(f"response '{name}' is not finite at row {bad}")
        outside = (y < 0) | (y > 1)
        if np.any(outside):
            bad = _first_bad_row(outside, frame.index)
            raise ValueError(
                f"response '{name}' must be in [0, 1] (0/1, or proportions with weights= the "
                f"trials); row {bad} has {values.to_numpy()[np.flatnonzero(outside)[0]]}; "
                "for counts use cbind(successes, failures)"
            )
        if weights is None and np.any((y != 0) & (y != 1)):
            not_binary = (y != 0) & (y != 1)
            bad = _first_bad_row(not_binary, frame.index)
            value = y[np.flatnonzero(not_binary)[0]]
            raise ValueError(
                f"response '{name}' must be 0 or 1 (row {bad} has {value}); "
                "for proportions give weights= the number of trials"
            )
    trials = np.ones_like(y) if weights is None else weights.copy()
    return y * trials, trials


def _check_finite(matrix: FloatArray, names: Sequence[str], what: str, index: pd.Index) -> None:
    bad = ~np.isfinite(matrix)
    if np.any(bad):
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{what} column '{names[col]}' is not finite (value {matrix[row, col]}) at row "
            f"{index[row]}"
        )
    huge = np.abs(matrix) > LARGEST_VALUE
    if np.any(huge):
        row, col = np.argwhere(huge)[0]
        raise ValueError(
            f"{what} column '{names[col]}' has the value {matrix[row, col]:g} at row "
            f"{index[row]}: beyond {LARGEST_VALUE:g} the fit overflows; rescale the column"
        )


def aliased_columns(x: FloatArray) -> list[int]:
    """Indices of the columns of ``x`` that are (numerically) linear combinations of the columns
    before them, in order, as R's ``qr()`` finds them (tolerance ``ALIAS_TOLERANCE``)."""
    if x.shape[1] == 0:
        return []
    norms = np.linalg.norm(x, axis=0)
    # Quick exit for the usual full-rank design (pivoted QR finds the rank).
    _, r_pivoted, _ = scipy.linalg.qr(x, mode="economic", pivoting=True)
    diagonal = np.abs(np.diag(r_pivoted))
    if x.shape[0] >= x.shape[1] and np.all(norms > 0):
        if diagonal.size and np.all(diagonal > ALIAS_TOLERANCE * diagonal[0]):
            return []
    # Unpivoted QR: |R_jj| is the norm of column j's part not explained by the columns before it.
    r = scipy.linalg.qr(x, mode="r")[0]
    residual = np.zeros(x.shape[1])
    size = min(r.shape)
    residual[:size] = np.abs(np.diag(r)[:size])
    return [j for j in range(x.shape[1]) if not residual[j] > ALIAS_TOLERANCE * norms[j]]


def _formulaic_error(what: str, exc: BaseException) -> ValueError:
    message = clean_message(exc)
    hint = ""
    if "NameError" in message or "not defined" in message or "SyntaxError" in message:
        hint = (
            "; write column names with spaces or symbols in backticks, as in `my column`, and "
            "check the spelling of functions (log, scale, poly, bs, factor, offset, I)"
        )
    return ValueError(f"cannot build {what}: {message}{hint}")


def _matrix(expr: str, frame: pd.DataFrame, what: str) -> tuple[FloatArray, list[str], Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            mm = model_matrix(expr, frame, na_action="ignore", context=FORMULA_CONTEXT)
    except Exception as exc:  # noqa: BLE001 - formulaic raises many types; name the term
        raise _formulaic_error(f"{what} '{expr}'", exc) from None
    names = [r_name(str(c)) for c in mm.columns]
    values = np.asarray(mm, dtype=np.float64)
    return values, names, mm.model_spec


def _rebuild(spec: Any, frame: pd.DataFrame, what: str) -> FloatArray:
    """A fit's matrix rebuilt for new data from its formulaic model spec (stateful transforms
    such as scale, poly and bs re-applied with the fit's parameters)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("error", DataMismatchWarning)
            matrix = spec.get_model_matrix(frame, na_action="ignore", context=FORMULA_CONTEXT)
    except DataMismatchWarning as exc:
        raise ValueError(
            f"newdata does not match the fit for {what}: {clean_message(exc)}"
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise _formulaic_error(f"{what} for newdata", exc) from None
    return np.asarray(matrix, dtype=np.float64)


_FACTOR_CALL_RE = re.compile(r"^(?:C|factor|as_factor)\(\s*`?([^`,()]+?)`?\s*(?:,.*)?\)$")


def _factor_column(expr: str, frame: pd.DataFrame) -> tuple[str, bool] | None:
    """The column a categorical factor expression reads: (name, True) for the column itself,
    (name, False) for ``factor(name)``/``C(name, ...)``; None for anything else."""
    plain = expr[1:-1] if expr.startswith("`") and expr.endswith("`") else expr
    if plain in frame.columns:
        return plain, True
    match = _FACTOR_CALL_RE.match(expr)
    if match is not None and match.group(1) in frame.columns:
        return match.group(1), False
    return None


def _is_categorical(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _check_width(expr: str, frame: pd.DataFrame, what: str) -> None:
    """Refuse a design that would be absurdly wide before formulaic builds it.

    The width is estimated from the levels of the categorical variables of each term."""
    try:
        terms = list(Formula(expr))
    except Exception as exc:  # noqa: BLE001
        raise _formulaic_error(f"{what} '{expr}'", exc) from None
    total = 0
    culprit = ""
    for term in terms:
        width = 1
        for factor in term.factors:
            found = _factor_column(str(factor.expr), frame)
            if found is None:
                continue
            name, plain = found
            if not plain or _is_categorical(frame[name]):
                levels = int(frame[name].nunique())
                width *= max(levels, 1)
                if levels > 50:
                    culprit = name
        total += width
    if total > MAX_DESIGN_COLUMNS or total * len(frame) > MAX_DESIGN_VALUES:
        advice = (
            f" ('{culprit}' has {frame[culprit].nunique():,} distinct values: if it holds "
            f"numbers, convert it with pd.to_numeric; if it labels groups, use it as a grouping "
            f"factor, as in (1 | {culprit}))"
            if culprit
            else ""
        )
        raise ValueError(
            f"{what} '{expr}' would have about {total:,} columns for {len(frame):,} rows, beyond "
            f"the limits of {MAX_DESIGN_COLUMNS:,} columns and {MAX_DESIGN_VALUES:,} values"
            f"{advice}"
        )


def _group_codes(
    frame: pd.DataFrame, group: tuple[str, ...]
) -> tuple[IntArray, tuple[object, ...], tuple[NDArray[np.str_], ...], IntArray]:
    """Codes of the interaction of the grouping variables, levels sorted as R would.

    Returns codes, levels, per-variable level keys and the sorted mixed-radix codes of the level
    combinations present. Labels are matched by R's as.character (1, 1.0 and "1" are one)."""
    per_variable = [factor_codes(frame[var]) for var in group]
    variable_keys = tuple(keys for _, _, keys in per_variable)
    if len(group) == 1:
        codes, labels, _ = per_variable[0]
        present = np.arange(len(labels), dtype=np.intp)
        return codes, tuple(labels), variable_keys, present
    combined = np.zeros(len(frame), dtype=np.intp)
    for codes, labels, _ in per_variable:
        combined = combined * len(labels) + codes
    present, inverse = np.unique(combined, return_inverse=True)
    digits = []
    remainder = present.copy()
    for _, labels, _ in reversed(per_variable):
        remainder, digit = np.divmod(remainder, len(labels))
        digits.append(digit)
    digits.reverse()
    texts = [
        np.asarray([str(label) for label in labels], dtype=object) for _, labels, _ in per_variable
    ]
    joined = texts[0][digits[0]]
    for text, digit in zip(texts[1:], digits[1:], strict=True):
        joined = joined + ":" + text[digit]
    return (
        inverse.astype(np.intp).reshape(-1),
        tuple(joined),
        variable_keys,
        present.astype(np.intp),
    )


def _missing_columns_message(formula: str, missing: list[str], frame: pd.DataFrame) -> str:
    message = (
        f"formula '{formula}' uses column(s) not in data: {', '.join(map(repr, missing))}; "
        f"available: {', '.join(map(str, frame.columns))}"
    )
    odd = [str(c) for c in frame.columns if not re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", str(c))]
    if odd:
        message += f"; write names with spaces or symbols in backticks, as in `{odd[0]}`"
    return message


def build_model(
    formula: str,
    data: Any,
    weights: Any = None,
    offset: Any = None,
) -> tuple[ModelData, DesignInfo]:
    """ModelData and DesignInfo for `formula` on `data` (rows with missing values dropped).

    Object columns of numbers are read as numbers, unused categories are dropped (R's
    droplevels), and aliased fixed-effect columns are dropped with a RankDeficiencyWarning
    (recorded in DesignInfo.warnings and DesignInfo.dropped_columns), as lme4 does."""
    if not isinstance(formula, str):
        raise ValueError("formula must be a string such as 'y ~ x + (1 | g)'")
    parsed = parse_formula(formula)
    frame = _as_frame(data)
    missing = [v for v in parsed.variables if v not in frame.columns]
    if missing:
        raise ValueError(_missing_columns_message(formula, missing, frame))
    offset_source: Literal["none", "column", "values"] = "none"
    offset_column = None
    if isinstance(weights, str):
        weights = (
            frame[weights] if weights in frame.columns else _missing_column("weights", weights)
        )
    if isinstance(offset, str):
        offset_source, offset_column = "column", offset
        offset = frame[offset] if offset in frame.columns else _missing_column("offset", offset)
    elif offset is not None:
        offset_source = "values"
    w_all = _row_values("weights", weights, len(frame))
    o_all = _row_values("offset", offset, len(frame))
    if not parsed.random:
        raise ValueError(
            f"formula '{formula}' has no random-effect term such as (1 | group); "
            "for a plain logistic regression use a GLM"
        )

    used = numbers_as_numeric(frame.loc[:, list(parsed.variables)], parsed.variables)
    complete = np.array(used.notna().all(axis=1), dtype=bool)
    for arr in (w_all, o_all):
        if arr is not None:
            complete &= ~np.isnan(arr)
    n_dropped = int(np.sum(~complete))
    sub = drop_unused_categories(used.loc[complete])
    if len(sub) < 2:
        raise ValueError(f"fewer than two complete rows in data for formula '{formula}'")
    w = None if w_all is None else w_all[complete]
    if w is not None and (np.any(~np.isfinite(w)) or np.any(w < 0)):
        raise ValueError("weights must be finite and non-negative")
    o = np.zeros(len(sub)) if o_all is None else o_all[complete]
    if not np.all(np.isfinite(o)):
        raise ValueError("offset must be finite")

    successes, trials = _response(parsed, sub, w)
    _check_width(parsed.fixed, sub, "fixed-effects design")
    x, fixed_names, fixed_spec = _matrix(parsed.fixed, sub, "fixed-effects term")
    _check_finite(x, fixed_names, "fixed-effects", sub.index)
    fit_warnings: list[FitWarning] = []
    dropped = aliased_columns(x)
    kept = [j for j in range(x.shape[1]) if j not in set(dropped)]
    dropped_names: list[str] = []
    if dropped:
        dropped_names = [fixed_names[j] for j in dropped]
        message = FitWarning(
            f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
            f"column{'s' if len(dropped) > 1 else ''} / coefficient"
            f"{'s' if len(dropped) > 1 else ''}: {', '.join(map(repr, dropped_names))} "
            "(a linear combination of the columns before)",
            RankDeficiencyWarning,
        )
        message.emit(stacklevel=3)
        fit_warnings.append(message)
        x = x[:, kept]
        fixed_names = [fixed_names[j] for j in kept]

    offset_specs = []
    for expr in parsed.offsets:
        values, _, spec = _matrix(f"0 + {expr}", sub, f"offset({expr})")
        if values.shape[1] != 1:
            raise ValueError(f"offset({expr}) must be one numeric value per row")
        if not np.all(np.isfinite(values)):
            bad = _first_bad_row(~np.isfinite(values[:, 0]), sub.index)
            raise ValueError(f"offset({expr}) is not finite at row {bad}")
        o = o + values[:, 0]
        offset_specs.append(spec)

    blocks, specs = [], []
    for term in parsed.random:
        if term.expr == "1":
            # (1 | g), the commonest term: no need to ask formulaic for a column of ones.
            z, names, spec = np.ones((len(sub), 1)), ["(Intercept)"], None
        else:
            _check_width(term.expr, sub, f"random-effect term {term.text}")
            z, names, spec = _matrix(term.expr, sub, f"random-effect term {term.text}")
        if z.shape[1] == 0:
            raise ValueError(f"random-effect term {term.text} has no columns")
        _check_finite(z, names, f"random-effect term {term.text}", sub.index)
        codes, levels, variable_keys, present = _group_codes(sub, term.group)
        group_name = ":".join(term.group)
        if len(levels) < 2:
            raise ValueError(
                f"grouping factor '{group_name}' in {term.text} has a single level; "
                "a random effect needs at least two groups"
            )
        blocks.append(RandomBlock(group_name, tuple(names), codes, levels, z))
        specs.append(RandomSpec(term, spec, levels, variable_keys, present))

    model = ModelData(
        successes=successes,
        trials=trials,
        x=x,
        offset=o,
        fixed_names=tuple(fixed_names),
        blocks=tuple(blocks),
    )
    info = DesignInfo(
        formula=parsed,
        fixed_spec=fixed_spec,
        random_specs=tuple(specs),
        n_dropped=n_dropped,
        response_name=parsed.response.successes,
        offset_specs=tuple(offset_specs),
        offset_source=offset_source,
        offset_column=offset_column,
        kept_columns=tuple(kept),
        dropped_columns=tuple(dropped_names),
        warnings=tuple(fit_warnings),
    )
    return model, info


def _missing_column(argument: str, name: str) -> Any:
    raise ValueError(f"{argument} names column '{name}', which is not in data")


def new_data_design(
    info: DesignInfo, newdata: Any, offset: Any = None, random: bool = True
) -> NewDesign:
    """The fit's design rebuilt for new data.

    Stateful transforms (scale, center, poly, bs) use the fit's parameters; a factor level the
    fit has not seen raises a ValueError naming the variable and level; grouping labels are
    matched as in the fit (R's as.character, so 1, 1.0 and "1" are one level) and levels the
    fit has not seen get code -1 (zero random effect). Rows missing a needed value are left out
    (``complete``). With ``random=False`` the random-effect terms and grouping columns are not
    needed."""
    frame = _as_frame(newdata)
    parsed = info.formula
    needed = set(expression_variables(parsed.fixed))
    for expr in parsed.offsets:
        needed |= expression_variables(expr)
    if random:
        for spec in info.random_specs:
            needed |= expression_variables(spec.term.expr) | set(spec.term.group)
    needed_list = sorted(needed)
    missing = [v for v in needed_list if v not in frame.columns]
    values: FloatArray | None = None
    if offset is not None:
        values = _row_values("offset", offset, len(frame))
    elif info.offset_source == "column":
        assert info.offset_column is not None
        if info.offset_column not in frame.columns:
            missing.append(info.offset_column)
        else:
            values = _row_values("offset", frame[info.offset_column], len(frame))
    elif info.offset_source == "values":
        raise ValueError(
            "the model was fitted with offset= values; pass offset= with one value per row of "
            "newdata (or fit with offset='column name' to take it from newdata)"
        )
    if missing:
        raise ValueError(
            f"newdata lacks column(s) {', '.join(map(repr, missing))} that the model uses"
            + ("" if random else " (with re='exclude')")
        )
    used = numbers_as_numeric(frame.loc[:, needed_list], needed_list)
    complete = np.array(used.notna().all(axis=1), dtype=bool)
    if values is not None:
        complete &= ~np.isnan(values)
    sub = used.loc[complete]
    specs = [info.fixed_spec, *info.offset_specs]
    if random:
        specs += [s.model_spec for s in info.random_specs if s.model_spec is not None]
    sub = _match_categories(specs, sub)

    x = _rebuild(info.fixed_spec, sub, "the fixed-effects design")
    if info.kept_columns is not None:
        x = x[:, list(info.kept_columns)]
    o = np.zeros(len(sub)) if values is None else values[complete]
    for expr, spec in zip(parsed.offsets, info.offset_specs, strict=True):
        o = o + _rebuild(spec, sub, f"offset({expr})")[:, 0]
    blocks: list[tuple[IntArray, FloatArray]] = []
    if random:
        for spec in info.random_specs:
            if spec.model_spec is None:
                z = np.ones((len(sub), 1))
            else:
                z = _rebuild(spec.model_spec, sub, f"random-effect term {spec.term.text}")
            blocks.append((_new_codes(spec, sub), z))
    return NewDesign(x=x, offset=o, random=blocks, complete=complete, index=frame.index)


def _match_categories(specs: list[Any], frame: pd.DataFrame) -> pd.DataFrame:
    """Check new data's factor levels against the fit's and code plain factor columns with the
    fit's categories, so formulaic encodes them as in the fit (1 and "1" match, as R's
    as.character). A level the fit has not seen raises a ValueError naming it, as lme4 does."""
    changed: dict[str, Any] = {}
    for spec in specs:
        for expr, (kind, state) in (getattr(spec, "encoder_state", None) or {}).items():
            categories = state.get("categories") if isinstance(state, dict) else None
            if str(getattr(kind, "value", kind)) != "categorical" or categories is None:
                continue
            found = _factor_column(str(expr), frame)
            if found is None:
                continue  # formulaic's own check (DataMismatchWarning) is made an error
            name, plain = found
            codes, new = match_codes(frame[name], label_keys(list(categories)))
            if new:
                shown = ", ".join(repr(v) for v in new[:5]) + (" ..." if len(new) > 5 else "")
                raise ValueError(
                    f"newdata: factor '{name}' has new level(s) {shown} not in the fit "
                    f"(levels: {', '.join(map(str, categories))}); predictions need levels "
                    "seen in the fit"
                )
            if plain:
                changed[name] = pd.Categorical.from_codes(codes, categories=pd.Index(categories))
    if not changed:
        return frame
    return frame.assign(**{k: pd.Series(v, index=frame.index) for k, v in changed.items()})


def _new_codes(spec: RandomSpec, frame: pd.DataFrame) -> IntArray:
    """Codes of new data's rows in the fit's levels of one grouping factor (-1: new level)."""
    group = spec.term.group
    per_variable = [
        match_codes(frame[var], keys)[0]
        for var, keys in zip(group, spec.variable_keys, strict=True)
    ]
    if len(group) == 1:
        return per_variable[0]
    combined = np.zeros(len(frame), dtype=np.intp)
    known = np.ones(len(frame), dtype=bool)
    for codes, keys in zip(per_variable, spec.variable_keys, strict=True):
        known &= codes >= 0
        combined = combined * len(keys) + np.maximum(codes, 0)
    assert spec.present is not None
    position = np.minimum(np.searchsorted(spec.present, combined), len(spec.present) - 1)
    found = known & (spec.present[position] == combined)
    return np.where(found, position, -1).astype(np.intp)


def new_levels_warning(info: DesignInfo, design: NewDesign) -> FitWarning | None:
    """A NewLevelsWarning naming the grouping factors with levels the fit has not seen."""
    counts: dict[str, int] = {}
    for spec, (codes, _) in zip(info.random_specs, design.random, strict=True):
        count = int(np.sum(codes < 0))
        if count:
            counts[":".join(spec.term.group)] = count
    if not counts:
        return None
    parts = [f"'{name}' ({n} row{'s' if n > 1 else ''})" for name, n in counts.items()]
    return FitWarning(
        f"newdata has levels of {', '.join(parts)} not seen in the fit; their random effects "
        "are taken as zero (population level), as lme4's allow.new.levels = TRUE",
        NewLevelsWarning,
    )


def formula_of(data: ModelData) -> str:
    """A readable lme4-style formula for ModelData built without one (spreadsheet input)."""
    fixed = " + ".join(data.fixed_names) or "1"
    random = " + ".join(f"({' + '.join(b.terms)} | {b.group})" for b in data.blocks)
    return f"y ~ {fixed} + {random}"
