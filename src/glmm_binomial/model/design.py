"""From a parsed lme4 formula and a DataFrame to ModelData (newdata.py goes back for new data).

This is the one place where data frames meet the model: it reads the frame as R would
(frame.py's reader policy: a column of numbers is numeric whatever its dtype, logical terms are
factors, unused levels dropped), drops incomplete rows
(as R's na.omit), builds the response (0/1, logical, two-level factor, proportion with weights,
or cbind), asks formulaic for the fixed-effects matrix (aliased columns dropped, as lme4 does),
the formula's offset terms and each random term's columns, and codes the grouping factors.
``DesignInfo`` keeps what is needed to rebuild the same matrices for new data: formulaic's model
specs, which re-apply stateful transforms (scale, center, poly, bs) with the fit's parameters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg
from formulaic import Formula
from numpy.typing import NDArray

from glmm_binomial.diagnostics import FitWarning, NonIntegerCountsWarning, RankDeficiencyWarning
from glmm_binomial.family import BINOMIAL_LOGIT, Family
from glmm_binomial.model.covariance import make_structure
from glmm_binomial.model.data import LARGEST_VALUE, ModelData, RandomBlock
from glmm_binomial.model.formula import (
    R_NAME_RE,
    ParsedFormula,
    RandomTerm,
    expression_variables,
    parse_formula,
    r_text,
)
from glmm_binomial.model.frame import (
    ColumnKind,
    ColumnReading,
    ColumnTable,
    Table,
    as_pandas,
    check_unique_columns,
    column_readings,
    complete_rows,
    decimal_comma_label,
    drop_unused_categories,
    factor_codes,
    match_codes,
    missing_counts,
    read_factor_labels,
    read_table,
    row_values,
    spelled_otherwise,
    stray_text_labels,
    too_few_rows_message,
)
from glmm_binomial.model.r_contrasts import contrasts_argument
from glmm_binomial.model.transforms import (
    CUT_CALL_RE,
    evaluate_response,
    factor_call_column,
    factor_column,
    formulaic_error,
    materialize,
)
from glmm_binomial.model.variable_summary import VariableSummary, formula_order, summarize_variables

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

MAX_DESIGN_COLUMNS = 10_000
"""Widest design (fixed-effects or one random term's columns) built; wider ones are refused."""

MAX_DESIGN_VALUES = 200_000_000
"""Largest rows x columns of a design built (1.6 GB of float64); larger ones are refused."""

ALIAS_TOLERANCE = 1e-7
"""A column whose part not explained by the columns before it has a norm below this fraction of
its own norm is aliased and dropped (R's ``qr()`` tolerance, as lme4's rank check uses)."""

INTEGER_TOLERANCE = 1e-3
"""Successes or trials farther than this from a whole number are non-integer counts (the
tolerance of R's binomial family, which warns "non-integer #successes in a binomial glm!")."""


@dataclass(frozen=True)
class RandomSpec:
    """How to rebuild one random block for new data.

    ``variable_keys`` holds, per grouping variable, the keys (R's as.character) of its levels in
    the fit; ``present`` the sorted mixed-radix codes of the level combinations the fit saw (the
    block's levels, in order)."""

    term: RandomTerm
    model_spec: Any
    levels: tuple[object, ...]
    variable_keys: tuple[NDArray[np.object_], ...] = ()
    present: IntArray | None = None


@dataclass(frozen=True)
class DesignInfo:
    """What a fitted model remembers of its formula and data.

    ``kept_columns`` indexes the columns of ``fixed_spec``'s matrix that the model uses (aliased
    columns dropped, named in ``dropped_columns``; None: all of them); ``offset_specs`` rebuild
    the formula's ``offset(...)`` terms; ``offset_source`` says where the ``offset=`` argument
    came from: a column of data (``offset_column``), values (new data must supply them) or
    nothing. How the data's columns were read: ``columns`` (frame.ColumnReading: numbers,
    logical, factor with its levels), ``response_levels`` a factor response's two levels (the
    second counts as a success; None for a numeric response) and ``weights_column`` the column
    the weights came from. With these, the same rows are built again from data, read the same
    way (new data; each partition of a Dask fit, newdata.rows_design).
    ``variables`` summarizes each variable of the fixed part and the offsets over the fit's rows
    (factor levels; a numeric variable's mean and range), in formula order, for reference grids
    (glmm_binomial.results.emmeans); ``null_basis``, for a design with aliased columns, an
    orthonormal basis of the full design's null space (design_null_basis), which says which
    linear functions of all its coefficients are estimable."""

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
    variables: tuple[VariableSummary, ...] = ()
    columns: tuple[ColumnReading, ...] = ()
    response_levels: tuple[Any, Any] | None = None
    weights_column: str | None = None
    null_basis: FloatArray | None = field(default=None, compare=False)


def term_columns(design: DesignInfo | None, n_fixed: int) -> dict[str, tuple[int, ...]]:
    """Term label -> the model's columns of that term, in formula order (empty without a
    design); the intercept is labelled "1"."""
    if design is None:
        return {}
    kept = design.kept_columns if design.kept_columns is not None else tuple(range(n_fixed))
    position = {original: j for j, original in enumerate(kept)}
    out: dict[str, tuple[int, ...]] = {}
    for term, where in design.fixed_spec.term_slices.items():
        columns = tuple(position[i] for i in range(where.start, where.stop) if i in position)
        if columns:
            out[_term_label(term)] = columns
    return out


def _term_label(term: Any) -> str:
    """A formulaic term's label as term_columns and droppable_terms give it (R's ^)."""
    return str(term).replace(" ** ", "^")


def term_variables(design: DesignInfo) -> dict[str, frozenset[str]]:
    """Term label (term_columns') -> the variables it is made of (R's factors attribute of
    terms(): age:urban of age and urban; the intercept "1" of none), every fixed-effects term
    in formula order."""
    return {
        _term_label(term): frozenset(f.expr for f in term.factors if f.expr != "1")
        for term in design.fixed_spec.term_slices
    }


def droppable_terms(design: DesignInfo) -> list[str]:
    """The fixed-effects terms (term_columns' labels) that R's drop1 drops one at a time: every
    term but the intercept that no other term contains (R's drop.scope, which keeps
    marginality: with age * urban only age:urban), in formula order."""
    factors = term_variables(design)
    return [
        label
        for label, mine in factors.items()
        if label != "1" and not any(mine < other for other in factors.values())
    ]


def subset_rows(subset: Any, frame: pd.DataFrame) -> NDArray[np.bool_]:
    """glmer's subset as a mask of frame's rows: one logical per row (a numpy or pandas mask,
    a pandas one aligned by index) or R code of the columns as text ("age > 20 & urban ==
    'Y'", R's operators and functions as in a formula); a row where it is missing is left out,
    as R's subset leaves it out. ValueError naming the argument otherwise."""
    if isinstance(subset, str):
        try:
            response = parse_formula(f"{subset} ~ 1").response
        except ValueError as error:
            raise ValueError(f"subset {subset!r} is not an R expression: {error}") from None
        if response.kind != "column":
            raise ValueError(f"subset must be a logical expression, got {subset!r}")
        missing = sorted(expression_variables(response.successes) - set(map(str, frame.columns)))
        if missing:
            raise ValueError(
                f"subset {subset!r} uses column(s) not in data: {', '.join(map(repr, missing))}"
            )
        try:
            values = evaluate_response(response.successes, frame)
        except ValueError as error:
            raise ValueError(f"subset {subset!r}: {error}") from None
    elif isinstance(subset, pd.Series):
        if not frame.index.isin(subset.index).all():
            raise ValueError("subset: a pandas Series needs a value for every row label of data")
        # Same labels (duplicates too) as they are; others aligned by label.
        values = subset if subset.index.equals(frame.index) else subset.reindex(frame.index)
    else:
        values = subset
    flags = pd.Series(np.asarray(values, dtype=object).ravel())
    if len(flags) != len(frame):
        raise ValueError(
            f"subset must give one value per row of data ({len(frame)}), got {len(flags)}"
        )
    known = flags[~pd.isna(flags)]
    if not all(isinstance(v, bool | np.bool_) for v in known):
        raise ValueError(
            "subset must be logical (TRUE/FALSE per row, or an R expression of the columns such "
            'as "age > 20"), got values such as ' + repr(known.iloc[0] if len(known) else None)
        )
    return np.asarray(flags.fillna(False), dtype=bool)


def _first_bad_row(mask: NDArray[np.bool_], index: pd.Index) -> object:
    return index[int(np.flatnonzero(mask)[0])]


def factor_response_levels(values: pd.Series, name: str) -> tuple[Any, Any] | None:
    """The two levels of a factor response in R's order (a categorical's categories present,
    else the values sorted as text; the second counts as a success); None for a numeric or
    logical response. ValueError unless there are exactly two."""
    if not isinstance(values.dtype, pd.CategoricalDtype) and pd.api.types.is_numeric_dtype(values):
        return None
    if isinstance(values.dtype, pd.CategoricalDtype):
        levels = [c for c in values.cat.categories if c in set(values.dropna())]
    else:
        levels = sorted(pd.unique(values.dropna()), key=str)
    if len(levels) != 2:
        # R's binomial would take the first level as failure and every other as success.
        hint = (
            f"; for R's reading of a factor (its first level a failure, every other a "
            f"success) write I({name} != {str(levels[0])!r}) ~ ..."
            if len(levels) > 2 and R_NAME_RE.fullmatch(name)
            else ""
        )
        raise ValueError(
            f"response '{name}' must be 0/1, logical or a factor with two levels; "
            f"it has {len(levels)} distinct values{hint}"
        )
    return levels[0], levels[1]


def response_levels(parsed: ParsedFormula, frame: Table) -> tuple[Any, Any] | None:
    """factor_response_levels of the formula's response (None for cbind counts)."""
    spec = parsed.response
    if spec.kind == "cbind":
        return None
    return factor_response_levels(evaluate_response(spec.successes, frame), spec.successes)


def response_counts(
    parsed: ParsedFormula,
    frame: Table,
    weights: FloatArray | None,
    levels: tuple[Any, Any] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Successes and trials (prior weights folded in). levels: a factor response's levels
    (factor_response_levels) when known beforehand (as for a part of the data), else found in
    frame."""
    spec = parsed.response
    if spec.kind == "cbind":
        assert spec.failures is not None
        counts = []
        for role, expr in (("successes", spec.successes), ("failures", spec.failures)):
            values = evaluate_response(expr, frame)
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                raise ValueError(f"cbind {role} '{expr}' must be numeric counts")
            arr = values.to_numpy(dtype=np.float64)
            if not np.isfinite(arr).all():
                bad = _first_bad_row(~np.isfinite(arr), frame.index)
                raise ValueError(f"cbind {role} '{expr}' is not finite at row {bad}")
            if (arr < 0).any():
                bad = _first_bad_row(arr < 0, frame.index)
                what = "successes exceed trials" if role == "failures" else "negative count"
                raise ValueError(f"cbind {role} '{expr}' is negative at row {bad} ({what})")
            counts.append(arr)
        successes, trials = counts[0], counts[0] + counts[1]
        if weights is not None:
            successes, trials = successes * weights, trials * weights
        return successes, trials

    name = spec.successes
    values = evaluate_response(name, frame)
    if levels is None:
        levels = factor_response_levels(values, name)
    if levels is not None:
        y = (values == levels[1]).to_numpy(dtype=np.float64)
    else:
        y = values.to_numpy(dtype=np.float64)
        if not np.isfinite(y).all():
            bad = _first_bad_row(~np.isfinite(y), frame.index)
            raise ValueError(f"response '{name}' is not finite at row {bad}")
        outside = (y < 0) | (y > 1)
        if outside.any():
            bad = _first_bad_row(outside, frame.index)
            raise ValueError(
                f"response '{name}' must be in [0, 1] (0/1, or proportions with weights= the "
                f"trials); row {bad} has {values.to_numpy()[np.flatnonzero(outside)[0]]}; "
                "for counts use cbind(successes, failures)"
            )
        if weights is None and ((y != 0) & (y != 1)).any():
            not_binary = (y != 0) & (y != 1)
            bad = _first_bad_row(not_binary, frame.index)
            value = y[np.flatnonzero(not_binary)[0]]
            raise ValueError(
                f"response '{name}' must be 0 or 1 (row {bad} has {value}); "
                "for proportions give weights= the number of trials"
            )
    trials = np.ones_like(y) if weights is None else weights.copy()
    return y * trials, trials


def check_finite(matrix: FloatArray, names: Sequence[str], what: str, index: pd.Index) -> None:
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{what} column '{names[col]}' is not finite (value {matrix[row, col]}) at row "
            f"{index[row]}"
        )
    huge = np.abs(matrix) > LARGEST_VALUE
    if huge.any():
        row, col = np.argwhere(huge)[0]
        raise ValueError(
            f"{what} column '{names[col]}' has the value {matrix[row, col]:g} at row "
            f"{index[row]}: beyond {LARGEST_VALUE:g} the fit overflows; rescale the column"
        )


GRAM_RANK_MARGIN = 1e-5
"""clearly_full_rank's threshold on each column's unexplained part relative to its norm: far
above ALIAS_TOLERANCE, and far above the rounding of the Gram matrix (its squares are exact to
about 1e-15), so a design that passes it has no aliased column by the QR rule either."""


def clearly_full_rank(x: FloatArray, norms: FloatArray) -> bool:
    """Whether no column of x comes near being a linear combination of the columns before it,
    from the Cholesky factor of the column-normalized Gram matrix (p x p: one product over the
    rows instead of a QR of the n x p matrix); False when unsure (then the QR decides)."""
    if x.shape[0] < x.shape[1] or not (norms > 0).all():
        return False
    gram = (x.T @ x) / np.outer(norms, norms)
    try:
        low = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return False
    # low[j, j] = |R_jj| / |x_j|: the share of column j not explained by the columns before it.
    return bool((np.diagonal(low) > GRAM_RANK_MARGIN).all())


def aliased_columns(x: FloatArray) -> list[int]:
    """Indices of the columns of ``x`` that are (numerically) linear combinations of the columns
    before them, in order, as R's ``qr()`` finds them (tolerance ``ALIAS_TOLERANCE``)."""
    if x.shape[1] == 0:
        return []
    norms = np.linalg.norm(x, axis=0)
    if clearly_full_rank(x, norms):
        return []
    # Quick exit for the usual full-rank design (pivoted QR finds the rank).
    _, r_pivoted, _ = scipy.linalg.qr(x, mode="economic", pivoting=True)
    diagonal = np.abs(np.diag(r_pivoted))
    if x.shape[0] >= x.shape[1] and (norms > 0).all():
        if diagonal.size and (diagonal > ALIAS_TOLERANCE * diagonal[0]).all():
            return []
    # Unpivoted QR: |R_jj| is the norm of column j's part not explained by the columns before it.
    r = scipy.linalg.qr(x, mode="r")[0]
    residual = np.zeros(x.shape[1])
    size = min(r.shape)
    residual[:size] = np.abs(np.diag(r)[:size])
    return [j for j in range(x.shape[1]) if not residual[j] > ALIAS_TOLERANCE * norms[j]]


def design_null_basis(x: FloatArray, dropped: Sequence[int]) -> FloatArray:
    """An orthonormal basis (columns) of the null space of the full design x whose columns
    ``dropped`` are aliased (aliased_columns): each dropped column minus its least-squares
    combination of the kept columns before it, orthonormalized. A linear function l of all the
    coefficients is estimable when l is orthogonal to it (emmeans' nonest basis)."""
    aliased = set(dropped)
    vectors = np.zeros((x.shape[1], len(dropped)))
    for k, j in enumerate(dropped):
        before = [i for i in range(j) if i not in aliased]
        vectors[j, k] = 1.0
        if before:
            combination = np.linalg.lstsq(x[:, before], x[:, j], rcond=None)[0]
            vectors[before, k] = -combination
    return np.asarray(np.linalg.qr(vectors)[0], dtype=np.float64)


def rank_deficiency_warning(dropped_names: Sequence[str]) -> FitWarning:
    """The RankDeficiencyWarning naming the aliased fixed-effect columns dropped (lme4's)."""
    plural = "s" if len(dropped_names) > 1 else ""
    return FitWarning(
        f"fixed-effect model matrix is rank deficient so dropping {len(dropped_names)} "
        f"column{plural} / coefficient{plural}: {', '.join(map(repr, dropped_names))} "
        "(a linear combination of the columns before)",
        RankDeficiencyWarning,
    )


def _is_categorical(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


@functools.lru_cache(maxsize=256)
def formula_terms(expr: str) -> tuple[Any, ...]:
    """formulaic's terms of a right-hand side, parsed once per text (a refit, a bootstrap or a
    power simulation builds the same formula again)."""
    return tuple(Formula(expr))


def distinct_count(series: pd.Series) -> int:
    """series.nunique() (missing values not counted); for a categorical, from its codes."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.array.codes)
        used = np.bincount(codes[codes >= 0], minlength=len(series.dtype.categories))
        return int(np.count_nonzero(used))
    return int(series.nunique())


def check_width(expr: str, frame: Table, what: str, rows: int | None = None) -> None:
    """Refuse a design that would be absurdly wide before formulaic builds it.

    The width is estimated from the levels of the categorical variables of each term. rows:
    the rows of a design built piece by piece (a Dask fit; frame then only carries the
    levels), which bounds its columns but not its values."""
    try:
        terms = formula_terms(expr)
    except Exception as exc:  # noqa: BLE001
        raise formulaic_error(f"{what} '{r_text(expr)}'", exc) from None
    total = 0
    culprit = ""
    for term in terms:
        width = 1
        for factor in term.factors:
            found = factor_column(str(factor.expr), frame)
            if found is None:
                continue
            name, plain = found
            if not plain or _is_categorical(frame[name]):
                levels = distinct_count(frame[name])
                width *= max(levels, 1)
                if levels > 50:
                    culprit = name
        total += width
    values_limited = rows is None
    rows = len(frame) if rows is None else rows
    if total > MAX_DESIGN_COLUMNS or (values_limited and total * rows > MAX_DESIGN_VALUES):
        advice = (
            f" ('{culprit}' has {frame[culprit].nunique():,} distinct values: if it holds "
            f"numbers, convert it with pd.to_numeric; if it labels groups, use it as a grouping "
            f"factor, as in (1 | {culprit}))"
            if culprit
            else ""
        )
        raise ValueError(
            f"{what} '{expr}' would have about {total:,} columns for {rows:,} rows, beyond "
            f"the limits of {MAX_DESIGN_COLUMNS:,} columns and {MAX_DESIGN_VALUES:,} values"
            f"{advice}"
        )


def group_codes(
    frame: Table, group: tuple[str, ...]
) -> tuple[IntArray, tuple[object, ...], tuple[NDArray[np.object_], ...], IntArray]:
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


def codes_in_levels(spec: RandomSpec, frame: pd.DataFrame) -> IntArray:
    """Codes of frame's rows in the levels `spec` learned for one grouping factor (-1: a level
    not among them): new data for prediction, or one Dask partition's rows."""
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


def value_variables(parsed: ParsedFormula) -> list[str]:
    """Columns whose values enter the model (not only as grouping labels): the reader policy
    (frame.read_columns) reads them. Grouping labels keep their text ("01" stays "01")."""
    names: set[str] = set()
    for expr in (parsed.fixed, *parsed.offsets, *(t.expr for t in parsed.random)):
        names |= expression_variables(expr)
    grouping = {v for t in parsed.random for v in t.group}
    return sorted(v for v in parsed.variables if v in names or v not in grouping)


def factor_terms(parsed: ParsedFormula) -> set[str]:
    """Columns the formula uses only as terms of their own (``u``, ``u:x``, ``factor(u)``),
    where a logical column is a factor with levels FALSE and TRUE (R's ``model.matrix``: its
    column is ``uTRUE``). A column also read inside an expression (``I(u * 1)``, an offset, the
    response) is left logical (0/1), since one column cannot be both."""
    plain: set[str] = set()
    inside: set[str] = set()
    for expr in (parsed.fixed, *(t.expr for t in parsed.random)):
        try:
            terms = list(formula_terms(expr))
        except Exception:  # noqa: BLE001 - materialize reports formulaic's error
            continue
        for term in terms:
            for factor in term.factors:
                text = str(factor.expr)
                column = factor_call_column(text)
                if text in parsed.variables:
                    plain.add(text)
                elif column is not None and column in parsed.variables:
                    plain.add(column)
                else:
                    inside |= expression_variables(text)
    for expr in parsed.offsets:
        inside |= expression_variables(expr)
    response = parsed.response
    for expr in (response.successes, response.failures or ""):
        inside |= expression_variables(expr) if expr else set()
    return plain - inside


def noninteger_counts_warning(
    successes: FloatArray, trials: FloatArray, index: pd.Index
) -> FitWarning | None:
    """R's warning for successes (or trials) that are not whole numbers: the binomial
    log-likelihood is then not one of counts (tolerance INTEGER_TOLERANCE, R's)."""
    for what, values in (("successes", successes), ("trials", trials)):
        off = np.abs(values - values.round()) > INTEGER_TOLERANCE
        if off.any():
            row = int(np.flatnonzero(off)[0])
            return FitWarning(
                f"non-integer #{what} in a binomial glm! ({int(off.sum())} row(s), first "
                f"row {index[row]!r} with {values[row]:g} {what}; weights multiply the counts)",
                NonIntegerCountsWarning,
            )
    return None


def _missing_columns_message(formula: str, missing: list[str], frame: pd.DataFrame) -> str:
    message = (
        f"formula '{formula}' uses column(s) not in data: {', '.join(map(repr, missing))}; "
        f"available: {', '.join(map(str, frame.columns))}"
    )
    near = spelled_otherwise(missing, frame.columns)
    if near:
        return f"{message}; {near}"
    odd = [str(c) for c in frame.columns if not R_NAME_RE.fullmatch(str(c))]
    if odd:
        message += f"; write names with spaces or symbols in backticks, as in `{odd[0]}`"
    return message


@dataclass(frozen=True)
class FitRows:
    """The rows of data a model is fitted to: ``frame`` (data as pandas, glmer's subset taken),
    its formula variables read (``used``, each read as ``kinds`` says), ``complete`` (the rows
    with every variable, weight and offset present: those fitted, as R's na.omit), and the
    weights and offset over all rows of ``frame`` (None: not given) with where they came from."""

    frame: pd.DataFrame
    used: ColumnTable
    kinds: dict[str, ColumnKind]
    complete: NDArray[np.bool_]
    weights: FloatArray | None
    offset: FloatArray | None
    offset_source: Literal["none", "column", "values"] = "none"
    offset_column: str | None = None
    weights_column: str | None = None


def fit_rows(
    parsed: ParsedFormula, data: Any, weights: Any = None, offset: Any = None, subset: Any = None
) -> FitRows:
    """Which rows of ``data`` a fit of ``parsed`` uses, with fit()'s weights, offset and
    subset (build_model's first step; also how a result finds its rows in the data it was
    given). ValueError naming a missing column or a formula without random-effect terms."""
    frame = as_pandas(data)
    if subset is not None:
        frame = frame[subset_rows(subset, frame)]
    index = frame.index if isinstance(data, pd.DataFrame) else None
    named = [v for v in (weights, offset) if isinstance(v, str)]
    check_unique_columns(frame, [*parsed.variables, *named], "data")
    missing = [v for v in parsed.variables if v not in frame.columns]
    if missing:
        raise ValueError(_missing_columns_message(parsed.text, missing, frame))
    offset_source: Literal["none", "column", "values"] = "none"
    offset_column = None
    weights_column = weights if isinstance(weights, str) else None
    if isinstance(weights, str):
        weights = (
            frame[weights] if weights in frame.columns else _missing_column("weights", weights)
        )
    if isinstance(offset, str):
        offset_source, offset_column = "column", offset
        offset = frame[offset] if offset in frame.columns else _missing_column("offset", offset)
    elif offset is not None:
        offset_source = "values"
    w_all = row_values("weights", weights, len(frame), index)
    o_all = row_values("offset", offset, len(frame), index)
    if not parsed.random:
        raise ValueError(
            f"formula '{parsed.text}' has no random-effect term such as (1 | group); "
            "for a plain logistic regression use a GLM"
        )
    used, kinds = read_table(frame, parsed.variables, value_variables(parsed), factor_terms(parsed))
    complete = complete_rows(used)
    for arr in (w_all, o_all):
        if arr is not None:
            complete &= ~np.isnan(arr)
    return FitRows(
        frame, used, kinds, complete, w_all, o_all, offset_source, offset_column, weights_column
    )


def decimal_comma_warning(name: str, n_levels: int, label: str) -> FitWarning:
    """The warning for a column of text of numbers with decimal commas, read as a factor."""
    # R reads such text as labels too, but a factor of numbers was hardly meant.
    return FitWarning(
        f"column {name!r} is read as a factor of {n_levels} levels: its text reads as "
        f"numbers written with a decimal comma ({label!r}), which are labels, as in R; for "
        "numbers give a decimal point (pandas: read_csv(..., decimal=',') or "
        ".str.replace(',', '.').astype(float); the command line: --decimal ,)"
    )


def stray_text_warning(
    name: str, n_levels: int, stray: Sequence[str], n_rows: int | None = None
) -> FitWarning:
    """The warning for a column of numbers with one or two labels of text (`stray`, held by
    `n_rows` rows when known), read as a factor."""
    shown = " and ".join(repr(label) for label in stray)
    rows = "" if n_rows is None else f", {n_rows} row{'s' if n_rows > 1 else ''}"
    return FitWarning(
        f"column {name!r} is read as a factor of {n_levels} levels, as R reads it, because "
        f"{len(stray)} of its labels {'is' if len(stray) == 1 else 'are'} not a number "
        f"({shown}{rows}); for numbers fix or drop that text "
        f"(pd.to_numeric(data[{name!r}], errors='coerce') makes it missing)"
    )


def text_number_warning(
    name: str, labels: Sequence[object], column: pd.Series | None = None
) -> FitWarning | None:
    """The warning for a column read as a factor of these `labels` whose text was almost
    surely meant as numbers: decimal commas (decimal_comma_warning), else a stray label of
    text among numbers (stray_text_warning, with the rows of `column` that hold it when
    given); None for any other factor."""
    comma = decimal_comma_label(labels)
    if comma is not None:
        return decimal_comma_warning(name, len(labels), comma)
    stray = stray_text_labels(labels)
    if not stray:
        return None
    rows = None
    if column is not None:
        rows = int(np.isin(np.asarray(column.astype(str), dtype=object), stray).sum())
    return stray_text_warning(name, len(labels), stray, rows)


def reading_warnings(
    frame: pd.DataFrame, table: Table, kinds: dict[str, ColumnKind]
) -> list[FitWarning]:
    """text_number_warning for each column of `table` read as a factor that `frame` did not
    give as a categorical."""
    found = (
        text_number_warning(name, labels, column)
        for name, column, labels in read_factor_labels(frame, table, kinds)
    )
    return [warning for warning in found if warning is not None]


def no_information(cause: str) -> ValueError:
    """The error for data whose every row has zero trials (or weight): without it the fit
    would end with every estimate at its start, flagged only as not converged."""
    return ValueError(
        f"{cause}: no row carries information, so there is nothing to fit (weights= is each "
        "row's prior weight, or the trials of a proportion response)"
    )


def build_model(
    formula: str,
    data: Any,
    weights: Any = None,
    offset: Any = None,
    family: Family = BINOMIAL_LOGIT,
    contrasts: Any = None,
    subset: Any = None,
) -> tuple[ModelData, DesignInfo]:
    """ModelData and DesignInfo for `formula` on `data` (rows with missing values dropped),
    the model of the given family (glmm_binomial.family.make_family; the binomial logit by
    default). contrasts: glmer's contrasts argument, e.g. {"f": "contr.sum"}
    (model.r_contrasts; the fixed part's factors only, as lme4). subset: glmer's subset, the
    rows to use (subset_rows), taken before anything else.

    Columns are read by frame.py's reader policy (numbers whatever their dtype, logical terms as
    FALSE/TRUE factors), unused categories are dropped (R's droplevels), non-integer counts
    warn as in R (NonIntegerCountsWarning), and aliased fixed-effect columns are dropped with a
    RankDeficiencyWarning (recorded in DesignInfo.warnings and DesignInfo.dropped_columns), as
    lme4 does."""
    if not isinstance(family, Family):
        raise ValueError("family must be a Family object (glmm_binomial.family.make_family)")
    if not isinstance(formula, str):
        raise ValueError("formula must be a string such as 'y ~ x + (1 | g)'")
    parsed = parse_formula(formula)
    coding = contrasts_argument(contrasts)
    rows = fit_rows(parsed, data, weights, offset, subset)
    used, kinds, complete = rows.used, rows.kinds, rows.complete
    w_all, o_all = rows.weights, rows.offset
    offset_source, offset_column = rows.offset_source, rows.offset_column
    weights_column = rows.weights_column
    n_dropped = int((~complete).sum())
    sub = drop_unused_categories(used if n_dropped == 0 else used.rows(complete))
    if len(sub) < 2:
        counts = missing_counts(used)
        for name, arr in (("weights", w_all), ("offset", o_all)):
            if arr is not None and np.isnan(arr).any():
                counts[name] = int(np.count_nonzero(np.isnan(arr)))
        raise ValueError(too_few_rows_message(formula, len(used), counts))
    w = None if w_all is None else w_all[complete]
    if w is not None and ((~np.isfinite(w)).any() or (w < 0).any()):
        raise ValueError("weights must be finite and non-negative")
    if w is not None and not (w > 0).any():
        raise no_information("weights are all zero on the rows used")
    o = np.zeros(len(sub)) if o_all is None else o_all[complete]
    if not np.isfinite(o).all():
        raise ValueError("offset must be finite")

    if family.n_parameters and w is not None and parsed.response.kind == "cbind":
        # Prior weights multiply the binomial's counts, which a beta-binomial row is not.
        raise ValueError(
            f"weights with a cbind() response are not available for family {family.name!r}: "
            "give the counts themselves (weights= is the trials of a proportion response)"
        )
    factor_levels = response_levels(parsed, sub)
    successes, trials = response_counts(parsed, sub, w, factor_levels)
    if not (trials > 0).any():
        raise no_information(
            f"response cbind({parsed.response.successes}, {parsed.response.failures}) has zero "
            "trials (successes + failures) on every row used"
        )
    fit_warnings = reading_warnings(rows.frame, sub, kinds)
    for warning in fit_warnings:
        warning.emit(stacklevel=3)
    counts_warning = noninteger_counts_warning(successes, trials, sub.index)
    if counts_warning is not None:
        counts_warning.emit(stacklevel=3)
        fit_warnings.append(counts_warning)
    check_width(parsed.fixed, sub, "fixed-effects design")
    x, fixed_names, fixed_spec = materialize(parsed.fixed, sub, "fixed-effects term", coding)
    absent = [name for name in coding if name not in fixed_spec.encoder_state]
    if absent:
        # R's model.matrix: "variable 'z' is absent, its contrast will be ignored".
        message = FitWarning(
            f"contrasts: variable {absent[0]!r} is not a factor term of the fixed effects, "
            "its contrast is ignored"
        )
        message.emit(stacklevel=3)
        fit_warnings.append(message)
    check_finite(x, fixed_names, "fixed-effects", sub.index)
    dropped = aliased_columns(x)
    kept = [j for j in range(x.shape[1]) if j not in set(dropped)]
    dropped_names: list[str] = []
    null_basis = None
    if dropped:
        null_basis = design_null_basis(x, dropped)
        dropped_names = [fixed_names[j] for j in dropped]
        message = rank_deficiency_warning(dropped_names)
        message.emit(stacklevel=3)
        fit_warnings.append(message)
        x = x[:, kept]
        fixed_names = [fixed_names[j] for j in kept]

    offset_specs = []
    for expr in parsed.offsets:
        values, _, spec = materialize(f"0 + {expr}", sub, f"offset({r_text(expr)})")
        if values.shape[1] != 1:
            raise ValueError(f"offset({r_text(expr)}) must be one numeric value per row")
        if not np.isfinite(values).all():
            bad = _first_bad_row(~np.isfinite(values[:, 0]), sub.index)
            raise ValueError(f"offset({r_text(expr)}) is not finite at row {bad}")
        o = o + values[:, 0]
        offset_specs.append(spec)

    blocks, specs = [], []
    for term in parsed.random:
        if term.expr == "1":
            # (1 | g), the commonest term: no need to ask formulaic for a column of ones.
            z, names, spec = np.ones((len(sub), 1)), ["(Intercept)"], None
        else:
            check_width(term.expr, sub, f"random-effect term {term.text}")
            z, names, spec = materialize(term.expr, sub, f"random-effect term {term.text}")
        if z.shape[1] == 0:
            raise ValueError(f"random-effect term {term.text} has no columns")
        check_finite(z, names, f"random-effect term {term.text}", sub.index)
        codes, levels, variable_keys, present = group_codes(sub, term.group)
        group_name = ":".join(term.group)
        if len(levels) < 2:
            raise ValueError(
                f"grouping factor '{group_name}' in {term.text} has a single level; "
                "a random effect needs at least two groups"
            )
        structure = make_structure(term.structure, tuple(names), term.text)
        blocks.append(RandomBlock(group_name, tuple(names), codes, levels, z, structure))
        specs.append(RandomSpec(term, spec, levels, variable_keys, present))

    model = ModelData(
        successes=successes,
        trials=trials,
        x=x,
        offset=o,
        fixed_names=tuple(fixed_names),
        blocks=tuple(blocks),
        family=family,
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
        variables=_grid_variables(parsed, sub),
        columns=column_readings(sub, kinds),
        response_levels=factor_levels,
        weights_column=weights_column,
        null_basis=null_basis,
    )
    return model, info


def _grid_variables(parsed: ParsedFormula, frame: Table) -> tuple[VariableSummary, ...]:
    """Summaries of the variables of the fixed part and the offsets, in formula order."""
    names: set[str] = set(expression_variables(parsed.fixed))
    for expr in parsed.offsets:
        names |= expression_variables(expr)
    return summarize_variables(frame, formula_order(names, parsed.fixed, *parsed.offsets))


def _missing_column(argument: str, name: str) -> Any:
    hint = ""
    if not re.fullmatch(r"[\w.]+", name):
        # R code where a column name goes (R's offset = log(n)): say where it can be written.
        hint = (
            f"; for an expression write offset({name}) in the formula"
            if argument == "offset"
            else "; for an expression give its values (one number per row)"
        )
    raise ValueError(f"{argument} names column '{name}', which is not in data{hint}")


def formula_of(data: ModelData) -> str:
    """A readable lme4-style formula for ModelData built without one (spreadsheet input)."""
    fixed = " + ".join(data.fixed_names) or "1"
    random = " + ".join(f"({' + '.join(b.terms)} | {b.group})" for b in data.blocks)
    return f"y ~ {fixed} + {random}"


def encoded_factor_levels(info: DesignInfo, names: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """Levels of the variables of ``names`` the fixed design encodes as factors (a column,
    factor(x) or C(x)), from formulaic's encoder state: the categories the fit used, in
    order (reference grids and marginal effects set a variable to each level). A numeric x
    read through cut(x, ...) has one value per interval, the midpoint of its breaks (any
    value inside gives that level; a mean of x, or the mean -+ 1 of a joint test, may fall
    outside every interval)."""
    out: dict[str, tuple[Any, ...]] = {}
    wanted = set(names)
    transform_state = getattr(info.fixed_spec, "transform_state", None) or {}
    for expr, (kind, state) in (getattr(info.fixed_spec, "encoder_state", None) or {}).items():
        categories = state.get("categories") if isinstance(state, dict) else None
        if str(getattr(kind, "value", kind)) != "categorical" or categories is None:
            continue
        text = str(expr)
        cut = CUT_CALL_RE.match(text)
        breaks = (transform_state.get(text) or {}).get("breaks") if cut is not None else None
        if cut is not None and cut.group(1) in wanted and breaks is not None:
            edges = np.asarray(breaks, dtype=np.float64)
            out.setdefault(cut.group(1), tuple(float(m) for m in 0.5 * (edges[1:] + edges[:-1])))
            continue
        plain = text[1:-1] if text.startswith("`") and text.endswith("`") else text
        if plain in wanted:
            out.setdefault(plain, tuple(categories))
            continue
        column = factor_call_column(text)
        if column is not None and column in wanted:
            out.setdefault(column, tuple(categories))
    return out
