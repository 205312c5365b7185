"""R's functions as a formula calls them, for formulaic's evaluation context
(model.transforms.FORMULA_CONTEXT) and the response (RESPONSE_FUNCTIONS there).

Each gives what R gives, named as R names its columns: splines (``bs`` extended beyond the
boundary knots as R's ``predict.bs``, ``ns`` R's natural splines) and ``cut``, whose knots and
breaks are learned on the fit's data and kept for new data; lme4's ``dummy``; ``relevel``,
``interaction``, ``as.numeric`` and the other ``as.*`` (the parser turns R's dotted names into
the Python names here), ``log(x, base)``, ``pmin``, ``pmax``, ``ifelse``, ``c``; R's ``!``,
``&``, ``|`` and ``%in%`` inside an expression, which the parser writes as calls of r_not,
r_and, r_or and r_in (R's precedence, which Python's operators do not have). Checked against R's
model matrix by tests/test_r_coding.py.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from typing import Any

import numpy as np
import pandas as pd
from formulaic.materializers.types import FactorValues
from formulaic.transforms import C, ContrastsRegistry, basis_spline, stateful_transform
from numpy.typing import NDArray

from glmm_binomial.model.frame import factor_levels, label_key, label_keys
from glmm_binomial.model.r_contrasts import given_levels

__all__ = [
    "NUMERIC_FUNCTIONS",
    "r_as_integer",
    "r_as_logical",
    "r_and",
    "r_as_numeric",
    "r_as_vector",
    "r_bs",
    "r_c",
    "r_droplevels",
    "r_levels",
    "r_rank",
    "r_rev",
    "r_seq",
    "r_cut",
    "r_dummy",
    "r_factor",
    "r_factor_response",
    "r_ifelse",
    "r_in",
    "r_interaction",
    "r_is_na",
    "r_log",
    "r_not",
    "r_ns",
    "r_or",
    "r_ordered",
    "r_paren",
    "r_pmax",
    "r_pmin",
    "r_relevel",
]

FloatArray = NDArray[np.float64]


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


def r_dummy(f: Any, levels_to_keep: Any = None) -> Any:
    """lme4's ``dummy(f, levelsToKeep)``: 0/1 indicators (numbers, not a factor) of the
    given levels of f (all but the first when none are given); one level gives one column,
    named as R names it (``dummy(urban, "Y")``). Written ``(0 + dummy(f, "b") | g)`` for a
    random effect of one level of a factor. Labels compare as R's as.character."""
    values = np.asarray(f, dtype=object)
    missing = pd.isna(values)
    categories = getattr(getattr(f, "dtype", None), "categories", None)
    levels = list(label_keys(categories) if categories is not None else factor_levels(values))
    if levels_to_keep is None:
        keep = levels[1:]
    elif isinstance(levels_to_keep, str | int | float):
        keep = [label_key(levels_to_keep)]
    else:
        keep = [label_key(level) for level in levels_to_keep]
    unknown = [level for level in keep if level not in levels]
    if unknown or not keep:
        raise ValueError(
            f"dummy(): levels to keep {unknown or keep} are not levels of the factor {levels}"
        )
    keys = np.full(len(values), None, dtype=object)
    keys[~missing] = label_keys(values[~missing])
    columns = {level: np.where(missing, np.nan, keys == level) for level in keep}
    index = getattr(f, "index", None)
    if len(keep) == 1:
        return pd.Series(columns[keep[0]].astype(float), index=index)
    return pd.DataFrame({k: v.astype(float) for k, v in columns.items()}, index=index)


def _spline_design(knots: FloatArray, x: FloatArray, derivative: int = 0) -> FloatArray:
    """The cubic B-spline basis on knots at x (R's splines::splineDesign, ord = 4), or its
    derivative."""
    from scipy.interpolate import BSpline  # here only: the module costs an import

    n_basis = len(knots) - 4
    spline = BSpline(knots, np.eye(n_basis), 3, extrapolate=True)
    if derivative:
        spline = spline.derivative(derivative)
    return np.asarray(spline(x), dtype=np.float64).reshape(len(x), n_basis)


@stateful_transform
def r_ns(
    x: Any,
    df: int | None = None,
    knots: Any = None,
    intercept: bool = False,
    Boundary_knots: Any = None,  # noqa: N803 - R's Boundary.knots
    _state: dict[str, Any] | None = None,
) -> Any:
    """R's natural cubic spline basis ``splines::ns(x, df)``: interior knots at quantiles of x
    (R's type 7), boundary knots at its range, the B-spline basis with the second derivative
    zero at both boundary knots (R's QR of those constraints, so the columns are R's), and
    linear beyond the boundary knots. The knots are learned on the fit's data and kept for
    new data (``predict``)."""
    state = {} if _state is None else _state
    values = np.asarray(x, dtype=np.float64)
    if "knots" not in state:
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise ValueError("ns(): x has no values")
        ends = (present.min(), present.max()) if Boundary_knots is None else Boundary_knots
        low, high = sorted(float(end) for end in ends)
        if knots is None:
            # R: quantiles of the values within the boundary knots.
            within = present[(present >= low) & (present <= high)]
            n_interior = max(int(df if df is not None else 1) - 1 - int(intercept), 0)
            probabilities = np.linspace(0, 1, n_interior + 2)[1:-1]
            interior = np.quantile(within, probabilities) if n_interior else np.zeros(0)
        else:
            interior = np.sort(np.atleast_1d(np.asarray(knots, dtype=np.float64)))
        state["knots"] = [float(k) for k in interior]
        state["boundary"] = [low, high]
    interior = np.asarray(state["knots"], dtype=np.float64)
    low, high = state["boundary"]
    all_knots = np.sort(np.concatenate([[low] * 4, interior, [high] * 4]))
    basis = np.full((values.size, all_knots.size - 4), np.nan)
    inside = (values >= low) & (values <= high)
    basis[inside] = _spline_design(all_knots, values[inside])
    for side, pivot in ((values < low, low), (values > high, high)):
        if side.any():  # linear beyond the boundary knot, as R's ns
            at = _spline_design(all_knots, np.array([pivot]))[0]
            slope = _spline_design(all_knots, np.array([pivot]), 1)[0]
            basis[side] = at + np.outer(values[side] - pivot, slope)
    constraints = _spline_design(all_knots, np.array([low, high]), 2)
    if not intercept:
        constraints, basis = constraints[:, 1:], basis[:, 1:]
    # R's qr.qty(qr(t(const)), t(basis)) without its first two rows: the basis in the
    # complement of the constraints (LAPACK's Householder reflections are LINPACK's, so the
    # columns are R's).
    import scipy.linalg  # here only, as BSpline: the design's import stays light

    q = scipy.linalg.qr(constraints.T, mode="full")[0]
    basis = basis @ q[:, 2:]
    return FactorValues(
        {i + 1: basis[:, i] for i in range(basis.shape[1])},
        kind="numerical",
        spans_intercept=intercept,
        drop_field=None,
        format="{name}[{field}]",
        encoded=False,
    )


def _r_break_text(value: float, digits: int) -> str:
    """formatC(value, digits, width = 1), as R's cut labels its breaks."""
    if np.isinf(value):
        return "-Inf" if value < 0 else " Inf"
    return f"{0.0 + value:.{digits}g}"


@stateful_transform
def r_cut(
    x: Any,
    breaks: Any,
    right: bool = True,
    include_lowest: bool = False,
    dig_lab: int = 3,
    _state: dict[str, Any] | None = None,
) -> Any:
    """R's ``cut(x, breaks)``: the factor of the interval of each value, ``(a,b]`` (``[a,b)``
    with right = FALSE; include.lowest = TRUE closes the first, or with right = FALSE the
    last, at both ends). A number of breaks gives that many equal intervals over the range
    of x, widened by a thousandth at each end (R's), labelled with dig.lab = 3 significant
    digits (more where two labels would be equal); values outside the breaks are missing. The
    breaks are learned on the fit's data and kept for new data."""
    state = {} if _state is None else _state
    values = np.asarray(x, dtype=np.float64)
    if "breaks" not in state:
        edges = np.atleast_1d(np.asarray(breaks, dtype=np.float64))
        if edges.size == 1:
            count = int(edges[0])
            present = values[~np.isnan(values)]
            if count < 2 or present.size == 0:
                raise ValueError("cut(): breaks must be at least 2 (or the break points)")
            low, high = float(present.min()), float(present.max())
            width = high - low
            if width == 0:
                width = abs(low) or 1.0  # R: a range of one value is widened by its size
                edges = np.linspace(low - width / 1000, high + width / 1000, count + 1)
            else:
                edges = np.linspace(low, high, count + 1)
                edges[0], edges[-1] = low - width / 1000, high + width / 1000
        edges = np.sort(edges)
        for digits in range(int(dig_lab), max(13, int(dig_lab) + 1)):
            texts = [_r_break_text(float(e), digits) for e in edges]
            if all(a != b for a, b in itertools.pairwise(texts)):
                break
        opening, closing = ("(", "]") if right else ("[", ")")
        state["breaks"] = [float(e) for e in edges]
        labels = [f"{opening}{a},{b}{closing}" for a, b in itertools.pairwise(texts)]
        if include_lowest and right:
            labels[0] = "[" + labels[0][1:]
        elif include_lowest:
            labels[-1] = labels[-1][:-1] + "]"
        state["labels"] = labels
        state["include_lowest"] = bool(include_lowest)
    edges = np.asarray(state["breaks"], dtype=np.float64)
    codes = np.searchsorted(edges, values, side="left" if right else "right") - 1
    if state.get("include_lowest"):  # the closed end of the first (or last) interval
        end, code = (edges[0], 0) if right else (edges[-1], len(edges) - 2)
        codes = np.where(values == end, code, codes)
    outside = np.isnan(values) | (codes < 0) | (codes >= len(edges) - 1)
    codes = np.where(outside, -1, codes)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=pd.Index(state["labels"])),
        index=getattr(x, "index", None),
    )


def _values(x: Any) -> NDArray[np.float64]:
    return np.asarray(x, dtype=np.float64)


def r_log(x: Any, base: float | None = None) -> Any:
    """R's ``log(x, base)``, the natural log without a base (numpy's second argument is an
    output array)."""
    return np.log(x) if base is None else np.log(x) / np.log(base)


def r_pmin(*values: Any, na_rm: bool = False) -> Any:
    """R's ``pmin``: the elementwise minimum (a missing value wins unless na_rm)."""
    return functools.reduce(np.fmin if na_rm else np.minimum, map(_values, values))


def r_pmax(*values: Any, na_rm: bool = False) -> Any:
    """R's ``pmax``: the elementwise maximum (a missing value wins unless na_rm)."""
    return functools.reduce(np.fmax if na_rm else np.maximum, map(_values, values))


def r_ifelse(test: Any, yes: Any, no: Any) -> Any:
    """R's ``ifelse``: yes where test holds, no where it does not, missing where test is."""
    condition = np.asarray(test)
    missing = pd.isna(condition)
    chosen = np.where(np.where(missing, False, condition).astype(bool), yes, no)
    if missing.any():
        chosen = np.where(missing, np.nan, chosen.astype(np.float64))
    return chosen


def _categorical(x: Any, function: str) -> pd.Categorical:
    """x as a pandas Categorical: a categorical column, or factor()'s value (R's
    relevel(factor(x), ref)), whose levels are its categories or else its values sorted."""
    if isinstance(x, FactorValues):
        x = x.__wrapped__
        if not isinstance(getattr(x, "dtype", None), pd.CategoricalDtype):
            return pd.Categorical(x)
    dtype = getattr(x, "dtype", None)
    if not isinstance(dtype, pd.CategoricalDtype):
        raise ValueError(
            f"{function}() needs a factor (a column of text or categories, or factor(x))"
        )
    return pd.Categorical(x)


@stateful_transform
def r_relevel(x: Any, ref: Any, _state: dict[str, Any] | None = None) -> Any:
    """R's ``relevel(f, ref)``: the factor with level ref first (the reference of treatment
    contrasts), its levels named as R's as.character names them (factor(x) of numbers: "2",
    not "2.0"). The fit's levels are kept for new data, which may lack some of them."""
    values = _categorical(x, "relevel")
    # Only factor(x)'s levels need keeping: a categorical column arrives in the fit's levels
    # (new data and Dask partitions are read so), and a Dask fit refuses transforms with state.
    state = {} if _state is None or not isinstance(x, FactorValues) else _state
    keys = list(label_keys(np.asarray(values.categories, dtype=object)))
    if "levels" in state:
        order = list(state["levels"])
    else:
        if label_key(ref) not in keys:
            raise ValueError(f"relevel(): ref {ref!r} is not a level of the factor {keys}")
        first = keys.index(label_key(ref))
        order = [keys[first], *keys[:first], *keys[first + 1 :]]
        state["levels"] = order
    position = {key: j for j, key in enumerate(order)}
    codes = np.asarray(values.codes)
    # Each category's place in `order` (-1: not a level of the fit; the last -1 for missing).
    moved = np.array([position.get(key, -1) for key in keys] + [-1], dtype=np.intp)[codes]
    lost = (moved < 0) & (codes >= 0)
    if lost.any():
        outside = [keys[c] for c in np.unique(codes[lost])]
        raise ValueError(
            f"relevel(): new level(s) {', '.join(outside)} not in the fit "
            f"(levels: {', '.join(order)})"
        )
    kept = pd.Categorical.from_codes(moved, categories=pd.Index(order, dtype=object))
    return pd.Series(kept, index=getattr(x, "index", None))


def r_interaction(*factors: Any, sep: str = ".") -> Any:
    """R's ``interaction(f, g)``: the factor of level combinations ``a.x``, every
    combination a level (drop = FALSE), the first factor's levels varying fastest (R's
    order)."""
    values = [_categorical(f, "interaction") for f in factors]
    codes = np.zeros(len(values[0]), dtype=np.intp)
    stride = 1
    labels = [""]
    for value in values:
        names = [str(c) for c in value.categories]
        codes = codes + stride * np.asarray(value.codes)
        stride *= len(names)
        labels = [f"{label}{sep}{name}" if label else name for name in names for label in labels]
    missing = np.any([np.asarray(v.codes) < 0 for v in values], axis=0)
    codes = np.where(missing, -1, codes)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=pd.Index(labels)),
        index=getattr(factors[0], "index", None),
    )


def r_as_numeric(x: Any) -> Any:
    """R's ``as.numeric``: a factor's level numbers (1, 2, ..), numbers as they are."""
    if isinstance(getattr(x, "dtype", None), pd.CategoricalDtype):
        codes = np.asarray(pd.Categorical(x).codes, dtype=np.float64)
        return np.where(codes < 0, np.nan, codes + 1)
    return _values(x)


def r_as_integer(x: Any) -> Any:
    """R's ``as.integer``: as.numeric truncated towards zero."""
    return np.trunc(r_as_numeric(x))


def r_as_logical(x: Any) -> Any:
    """R's ``as.logical`` of numbers (0 is FALSE, others TRUE; missing stays missing): a
    logical value, which R's model matrix codes as a factor."""
    numbers = _values(x)
    flags = pd.Series(numbers != 0, dtype="boolean", index=getattr(x, "index", None))
    flags[np.isnan(numbers)] = pd.NA
    return flags


def r_factor_response(values: Any) -> pd.Series:
    """``factor(y)`` as a response: the values as a factor (its first level a failure)."""
    return pd.Series(pd.Categorical(values), index=getattr(values, "index", None))


def _flags(x: Any) -> NDArray[np.bool_]:
    """R's logical of a value: numbers are TRUE unless 0 (missing rows are dropped before a
    formula's expressions are evaluated)."""
    return np.asarray(np.asarray(x, dtype=np.float64) != 0.0)


def r_not(x: Any) -> NDArray[np.bool_]:
    """R's ``!x`` (the parser's spelling of it): TRUE where x is FALSE or 0."""
    return ~_flags(x)


def r_and(a: Any, b: Any) -> NDArray[np.bool_]:
    """R's ``a & b`` row by row (the parser's spelling, with R's precedence: ``x > 0 & b`` is
    ``(x > 0) & b``)."""
    return _flags(a) & _flags(b)


def r_or(a: Any, b: Any) -> NDArray[np.bool_]:
    """R's ``a | b`` row by row (the parser's spelling, with R's precedence)."""
    return _flags(a) | _flags(b)


def r_in(x: Any, table: Any) -> NDArray[np.bool_]:
    """R's ``x %in% table`` inside an expression (``I(f %in% c("a", "b"))``): whether each
    value of x is among table's; numbers compare as numbers, anything else (a factor's labels,
    text) as R's as.character (label_key: 1, 1.0 and "1" alike)."""
    values = np.asarray(x, dtype=object)
    items = np.asarray(table if isinstance(table, list | tuple) else np.ravel(table), dtype=object)
    numeric = not isinstance(getattr(x, "dtype", None), pd.CategoricalDtype)
    if numeric:
        try:
            return np.isin(np.asarray(values, dtype=np.float64), items.astype(np.float64))
        except (TypeError, ValueError):
            pass  # text on a side: compared as labels
    return np.isin(label_keys(values), label_keys(items))


def _summary(function: Any) -> Any:
    """An R summary of numbers (mean, sd, ...) over the fit's rows, missing values kept
    unless na_rm (R's na.rm = TRUE): as R, evaluated on whatever rows it is given, so new data
    get their own (R's predict does the same; scale() and center() keep the fit's)."""

    def summary(x: Any, na_rm: bool = False) -> float:
        values = _values(x)
        if na_rm:
            values = values[~np.isnan(values)]
        # R's sd of one value is NA without a warning (the design's check rows are few).
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(function(values)) if values.size else float("nan")

    summary.__doc__ = f"R's {getattr(function, '__name__', 'summary')} of a column."
    return summary


def _extreme(function: Any) -> Any:
    """R's min or max of all values given (several arguments allowed), na_rm as R's."""

    def extreme(*values: Any, na_rm: bool = False) -> float:
        flat = np.concatenate([np.ravel(_values(v)) for v in values])
        if na_rm:
            flat = flat[~np.isnan(flat)]
        return float(function(flat))

    return extreme


def r_plogis(q: Any, location: float = 0.0, scale: float = 1.0) -> Any:
    """R's plogis: the logistic distribution function (the inverse logit)."""
    z = (_values(q) - location) / scale
    return np.exp(-np.logaddexp(0.0, -z))


def r_qlogis(p: Any, location: float = 0.0, scale: float = 1.0) -> Any:
    """R's qlogis: the logit, log(p / (1 - p)), on the logistic's location and scale."""
    values = _values(p)
    return location + scale * (np.log(values) - np.log1p(-values))


def r_pnorm(q: Any, mean: float = 0.0, sd: float = 1.0) -> Any:
    """R's pnorm: the normal distribution function."""
    from scipy.special import ndtr  # only where a formula calls it (the import is heavy)

    return ndtr((_values(q) - mean) / sd)


def r_qnorm(p: Any, mean: float = 0.0, sd: float = 1.0) -> Any:
    """R's qnorm: the normal quantile function."""
    from scipy.special import ndtri

    return mean + sd * ndtri(_values(p))


def _special(name: str, shift: float = 0.0) -> Any:
    """R's gamma-family function `name` of scipy.special at x + shift (factorial(x) is
    gamma(x + 1)), imported only where a formula calls it."""

    def call(x: Any) -> Any:
        import scipy.special

        return getattr(scipy.special, name)(_values(x) + shift)

    return call


def r_trigamma(x: Any) -> Any:
    """R's trigamma: the second derivative of lgamma."""
    from scipy.special import polygamma

    return polygamma(1, _values(x))


@stateful_transform
def r_factor(
    x: Any,
    levels: Any = None,
    labels: Any = None,
    ordered: bool = False,
    _state: dict[str, Any] | None = None,
) -> FactorValues:
    """R's factor(x, levels, labels, ordered): the levels in the given order (matched as R's
    as.character), relabelled by labels (one label per level, or one text that R numbers:
    labels = "L" gives L1, L2, ..); an ordered factor is coded as R codes one, by orthogonal
    polynomial contrasts (.L, .Q, .C, ^4 ..). Without levels, those relabelled are the fit's
    (x's categories, else its values sorted as text), kept for new data."""
    contrasts = ContrastsRegistry.poly() if ordered else None
    if labels is None:
        if levels is None:
            return C(x, contrasts)
        # As a categorical of those levels (a value outside them missing, as C's levels make
        # it): a function of the factor (relevel) reads its levels from the values.
        given = list(levels)
        series = pd.Series(pd.Categorical(x, categories=given), index=getattr(x, "index", None))
        return C(series, contrasts, levels=given)
    state = {} if _state is None else _state
    values = np.asarray(x, dtype=object)
    missing = pd.isna(values)
    keys = np.empty(len(values), dtype=object)
    keys[~missing] = label_keys(values[~missing])
    if levels is not None:
        order = [label_key(v) for v in levels]
    elif "levels" in state:
        order = list(state["levels"])
    else:
        categories = getattr(getattr(x, "dtype", None), "categories", None)
        present = categories if categories is not None else factor_levels(values)
        order = list(label_keys(np.asarray(present, dtype=object)))
        state["levels"] = order
    names = [labels] if isinstance(labels, str) else list(labels)
    if len(names) == 1 and len(order) > 1:
        names = [f"{names[0]}{j + 1}" for j in range(len(order))]
    if len(names) != len(order):
        raise ValueError(
            f"factor(): {len(names)} labels for {len(order)} levels (one label per level)"
        )
    codes = np.full(len(values), -1, dtype=np.intp)
    for j, key in enumerate(order):
        codes[keys == key] = j
    unknown = sorted(set(keys[(codes < 0) & ~missing]))
    if unknown:
        raise ValueError(
            f"factor(): value(s) {', '.join(map(repr, unknown))} not among the levels "
            f"{', '.join(order)} that the labels name"
        )
    relabelled = pd.Categorical.from_codes(codes, categories=pd.Index(names))
    series = pd.Series(relabelled, index=getattr(x, "index", None))
    return C(series, contrasts, levels=names)


def r_ordered(x: Any, levels: Any = None, labels: Any = None) -> FactorValues:
    """R's ordered(x): factor(x, ordered = TRUE), coded by orthogonal polynomials."""
    return r_factor(x, levels=levels, labels=labels, ordered=True)


def r_is_na(x: Any) -> NDArray[np.bool_]:
    """R's is.na (a fit's rows hold no missing value of the columns it reads: FALSE there)."""
    return np.asarray(pd.isna(np.asarray(x, dtype=object)), dtype=bool)


def r_as_vector(x: Any) -> Any:
    """R's as.vector: one column's values (scale()'s one-column matrix as a vector)."""
    values = np.asarray(x)
    return values.reshape(len(values)) if values.ndim == 2 and values.shape[1] == 1 else x


def r_paren(x: Any) -> Any:
    """R's parentheses inside an expression (the parser's spelling, which keeps them in the
    column's name as R does): x itself."""
    return x


def r_levels(x: Any) -> list[str]:
    """R's ``levels(f)``: a factor's levels in its order (a factor() result's own, a
    categorical's categories; text sorted as R's factor() sorts it), as text."""
    levels = given_levels(x)
    if levels is None:
        values = np.asarray(x, dtype=object)
        levels = list(factor_levels(values[~pd.isna(values)]))
    return [str(level) for level in levels]


def r_rev(x: Any) -> Any:
    """R's ``rev``: the values in reverse order (levels(), c() and columns alike)."""
    if isinstance(x, list | tuple):
        return list(x)[::-1]
    if isinstance(getattr(x, "dtype", None), pd.CategoricalDtype):
        return pd.Series(pd.Categorical(x)[::-1], index=getattr(x, "index", None))
    return np.asarray(x)[::-1]


def r_rank(x: Any) -> NDArray[np.float64]:
    """R's ``rank``: each value's rank among the rows given, ties at their average rank (R's
    ties.method = "average"); as mean(), new data are ranked among themselves (R's)."""
    from scipy.stats import rankdata

    return np.asarray(rankdata(_values(x), method="average"), dtype=np.float64)


def r_droplevels(x: Any) -> Any:
    """R's ``droplevels(f)``: the factor without the levels no row holds."""
    if isinstance(x, FactorValues):
        return x  # factor()'s levels are those present already
    if not isinstance(getattr(x, "dtype", None), pd.CategoricalDtype):
        raise ValueError("droplevels() needs a factor (a column of text or categories)")
    return pd.Series(pd.Categorical(x).remove_unused_categories(), index=getattr(x, "index", None))


def r_seq(start: Any, end: Any) -> NDArray[np.float64]:
    """R's ``start:end``: from start towards end in steps of 1 (the parser's spelling of a
    sequence of two numbers, as in ``x %in% 1:10``)."""
    a, b = float(start), float(end)
    count = int(np.floor(abs(b - a) + 1e-10)) + 1
    return a + np.copysign(1.0, b - a) * np.arange(count, dtype=np.float64)


def r_c(*values: Any) -> list[Any]:
    """R's ``c()`` of scalars and sequences (flattened, as R's c(1:3, 7)), for breaks, knots,
    levels and ``%in%``'s table."""
    out: list[Any] = []
    for value in values:
        out.extend(value.tolist() if isinstance(value, np.ndarray) else [value])
    return out


NUMERIC_FUNCTIONS: dict[str, Any] = {
    "log": r_log,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "floor": np.floor,
    "ceiling": np.ceil,
    "trunc": np.trunc,
    "sign": np.sign,
    "pmin": r_pmin,
    "pmax": r_pmax,
    "ifelse": r_ifelse,
    "as_numeric": r_as_numeric,
    "as_integer": r_as_integer,
    "as_vector": r_as_vector,
    "is_na": r_is_na,
    "r_not": r_not,
    "r_and": r_and,
    "r_or": r_or,
    "r_in": r_in,
    "r_paren": r_paren,
    "c": r_c,
    "r_seq": r_seq,
    "mean": _summary(np.mean),
    "median": _summary(np.median),
    "sd": _summary(lambda v: np.std(v, ddof=1)),
    "var": _summary(lambda v: np.var(v, ddof=1)),
    "sum": _extreme(np.sum),
    "min": _extreme(np.min),
    "max": _extreme(np.max),
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "gamma": _special("gamma"),
    "lgamma": _special("gammaln"),
    "digamma": _special("digamma"),
    "trigamma": r_trigamma,
    "factorial": _special("gamma", 1.0),
    "lfactorial": _special("gammaln", 1.0),
    "plogis": r_plogis,
    "qlogis": r_qlogis,
    "pnorm": r_pnorm,
    "qnorm": r_qnorm,
    "pi": np.pi,
    "rank": r_rank,
    "rev": r_rev,
    "levels": r_levels,
    "droplevels": r_droplevels,
}
"""R's functions of numbers (with the parser's spellings of R's logical operators and %in%,
and c()), for the right-hand side and the response alike."""
