"""Estimated marginal means, contrasts and trends on a reference grid, as R's emmeans 1.8.4.

Reference grid (emmeans' ref_grid): every variable of the fixed part crossed, a factor at its
levels, a numeric variable at its mean over the fit's rows (cov.reduce = mean), or at its two
values when it has at most two (cov.keep = "2"), or at the values given by ``at=``; the first
variable varies fastest (R's expand.grid). Each grid row has the fixed-effects design row
x_g that the fit's formula gives it (stateful transforms such as scale() or poly() with the
fit's parameters; glmm_binomial.newdata.new_data_design), and an offset o_g. emmeans 1.8.4
takes the offset as a covariate of its own (.offset., the fit's offset per row: its
formula's offset() terms plus fit()'s offset=), at its mean over the fit's rows, whatever
the grid's values of the variables it was computed from: with ``offset(log(n))`` that is the
mean of log(n), not the log of n's mean, and ``at=`` for n leaves it as it is. An offset with
two distinct values over the rows is kept at both, as any covariate with two (cov.keep =
"2"): the grid's last variable, ".offset.", whose value is the row's offset; the means
average over it (its average taken with the means' weights, but equally under "cells" and
"flat", as emmeans' fac.reduce does), its cell counts split by it, and nesting finds the
offset's variable in it (n within .offset.) or a factor that follows it (each mean then at
its own offset, .offset. a column of the means, left out of contrasts' labels). Trends and
joint tests, which do not depend on the offset, leave it out (emmeans 1.8.4 stops on both
there). ``offset=`` replaces the offset, .offset. included (emmeans' offset=, for example
log(1000) for a rate per 1000).

Marginal means: for each combination of the ``specs`` and ``by`` variables, L is the equal-
weight average of the x_g rows that have it (emmeans' default weights = "equal": averaged over
the other factors and the values of the other grid variables). ``weights=`` chooses other
weights as emmeans' does, from each grid row's cell count n_g (emmeans' .wgt.: the fit's rows
with the grid row's levels of the factors and of the numeric variables kept at their values;
numeric variables at a mean or at ``at=`` values do not split the count): "proportional"
weights each combination of the averaged-over variables by its count summed over the rest,
"outer" by the product of each averaged-over variable's marginal proportions (times the
total), "cells" each grid row by n_g within its mean, "flat" each grid row with data (n_g > 0)
equally; a vector of numbers gives the weights of the averaged-over combinations (first
variable fastest). A mean whose cells all lack data ("cells", "flat") is NaN, and so is every
contrast that uses it; weights apply only where the means average over something.

Nesting (emmeans' .find_nests and .nested_emm): a variable is nested in others when the
model's terms say so (livch + livch:urban: urban within livch) or when, in the fit's rows,
each of its levels is seen with one level of another (kids and livch, kids "no" only for
livch "0": livch within kids). A spec or by variable that is nested brings its nesters into
the specs (the means of urban are those of urban within each livch); a nested variable that
the means average over is averaged within each level of its nesters over the levels seen
there, and those means then averaged as a grid of their own (emmeans' two stages, each with
the weights asked for, the second recursively where another nested variable is averaged
over); combinations of a nested spec and its nesters with no data are not shown. Each output
notes the nesting. A fit that keeps no rows (fit_model, Dask) has the nesting of its terms
only; weights given as numbers are refused where a nested variable is averaged over.

On the link scale the estimate is eta = L beta + o and its standard error sqrt(diag(L V L')),
V the covariance of beta; intervals eta -/+ z_{1-a/2} SE (df = Inf, asymptotic, as emmeans
for glmer fits). On the response scale (``type="response"``) the estimate is h(eta) with h the
inverse link, the SE |h'(eta)| SE by the delta method, and the interval h of the link-scale
interval.

Bias adjustment (``bias_adjust=True``, emmeans' bias.adjust = TRUE with ``sigma``): the mean
probability over the random effects is approximated to second order,
E[h(eta + b)] ~ h(eta) + sigma^2/2 h''(eta), with h'' and h''' taken by emmeans' central
differences of h' with step 0.001 (so that the numbers match emmeans'), SE by the delta method of
that function. sigma defaults to the square root of the random-effect variance of
glmm_binomial.results.variance_decomposition (the mean over the fit's rows of z' Sigma z summed
over terms: the term's SD for a single (1 | g) term, which is what emmeans' documentation
suggests for a GLMM); pass ``sigma=`` to choose another.

Contrasts (``contrast``, ``pairs``): C times the means within each ``by`` group, with emmeans'
families (pairwise: earlier level minus later; revpairwise; trt.vs.ctrl: each level minus the
control; consec, eff, del.eff, poly; or a dict of weight vectors), or interaction contrasts
(the Kronecker product of one family per variable), z tests and multiplicity adjustments
(glmm_binomial.results.multiplicity: Tukey for pairs, emmeans' dunnettx for trt.vs.ctrl, mvt,
Scheffe, Sidak, the p.adjust methods, Bonferroni, none). On the response scale of a logit
model, true contrasts are odds ratios exp(C eta) with SE exp(C eta) SE by the delta method and
z and p from the log scale; ``regrid`` puts the means on the response scale as a grid of their
own, whose contrasts are differences of probabilities. A contrast that no coefficient enters
is its offsets' contrast exactly, with no standard error and no test.

Trends (``emtrends``): the slope of the linear predictor in a numeric variable, by emmeans'
forward difference (x_g(var + h) - x_g(var)) / h with h = 0.001 times the range of the
variable over the fit's rows, averaged as above.

What is built here (the Python package marginaleffects was looked at: it needs the fit's data
frame, polars and jax, averages over the observed rows rather than a reference grid with equal
weights, has no Tukey or dunnettx adjustment and its current release needs Python 3.12, so it is
not used): the reference grid, the linear functions, the link and response scales, bias
adjustment, contrasts with adjusted p-values and intervals, and trends.

Fits by variational Bayes use the posterior means of beta and their posterior covariance (the
output says so). A rank-deficient fit (aliased columns dropped, as lme4 drops them) gives the
means, trends and contrasts that are estimable, as emmeans: a linear function l of all the
formula's coefficients (the dropped ones at 0) is estimable when it is orthogonal to the full
design's null space (model.design.design_null_basis; estimability's is.estble, |N'l|^2 <
ESTIMABLE_TOL |l|^2); the others are NaN (emmeans' nonEst), and a note names them.
joint_tests tests each term on the estimable part of its contrasts, as emmeans does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special

from glmm_binomial.arguments import fraction, non_negative, real
from glmm_binomial.family import Family
from glmm_binomial.model.design import encoded_factor_levels
from glmm_binomial.model.frame import label_key, label_keys
from glmm_binomial.model.newdata import new_data_design
from glmm_binomial.model.variable_summary import VariableSummary
from glmm_binomial.numerics.covariance import (
    LimitCovariance,
    moving_rows,
    transform_covariance,
)
from glmm_binomial.results.aliases import renamed_level
from glmm_binomial.results.base import data_rows
from glmm_binomial.results.multiplicity import (
    ADJUSTMENTS,
    BONFERRONI_INTERVALS,
    MVT_ABSEPS,
    MVT_FINE_TESTS,
    MVT_MAX_TESTS,
    adjust_p_values,
    correlation_of,
    critical_value,
    mvt_abseps,
)
from glmm_binomial.results.variance_decomposition import random_variance
from glmm_binomial.results.wald import joint_chisq, numerical_rank

if TYPE_CHECKING:
    from glmm_binomial.results.result import GLMMResult

__all__ = [
    "BIAS_STEP",
    "GRID_LIMIT",
    "TREND_STEP",
    "EMMeans",
    "ReferenceGrid",
    "contrast",
    "by_groups",
    "contrast_rank",
    "emmeans",
    "emtrends",
    "joint_tests",
    "pairs",
    "reference_grid",
    "regrid",
    "WEIGHTS",
    "cell_counts",
    "row_weights",
    "weights_option",
]

FloatArray = NDArray[np.float64]

GRID_LIMIT = 10_000
"""Most rows a reference grid may have (emmeans' rg.limit)."""

TREND_STEP = 0.001
"""emtrends' difference step as a fraction of the variable's range (emmeans' delta.var)."""

BIAS_STEP = 0.001
"""Step of the central differences of h' in the bias adjustment (emmeans' 1000 * (f(eta +
.0005) - f(eta - .0005)))."""

METHODS = ("pairwise", "revpairwise", "trt.vs.ctrl", "consec", "eff", "del.eff", "poly")

POLY_NAMES = ("linear", "quadratic", "cubic", "quartic")
"""Names of poly contrasts' degrees 1-4 (emmeans'; "degree 5" and on after them)."""
POLY_MAX_DEGREE = 6
"""The highest degree of poly contrasts (emmeans' default max.degree)."""
TYPES = ("link", "response")
WEIGHTS = ("equal", "proportional", "outer", "cells", "flat")
"""emmeans' weights= options (a unique prefix, such as "prop", names one)."""

_PARENS = re.compile(r"-|\+|/|\*")  # emmeans' option parens: such levels are parenthesized


# --------------------------------------------------------------------------------------------
# Reference grid
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceGrid:
    """The reference grid of a fit: one row of ``frame`` per combination of the ``levels`` of
    each variable (first variable fastest), its design row in ``linfct`` and offset in
    ``offset``. ``factor_like`` names the variables averaged over as factors (factors, numeric
    variables kept at their values, variables given several values in ``at``). For a fit that
    dropped aliased columns, ``full`` holds the design rows with every column and
    ``null_basis`` the full design's null space (estimable_rows); both None otherwise.
    ``counted`` names the variables whose values split emmeans' cell counts (the factors and
    the numeric variables kept at their values; cell_counts)."""

    frame: pd.DataFrame
    levels: dict[str, tuple[Any, ...]]
    linfct: FloatArray
    offset: FloatArray
    factor_like: tuple[str, ...]
    summaries: dict[str, VariableSummary]
    factors: tuple[str, ...] = ()
    full: FloatArray | None = None
    null_basis: FloatArray | None = None
    counted: tuple[str, ...] = ()


def _check_result(result: Any, what: str) -> Any:
    """The fit's design; ValueError for a result without one, or for a fit that dropped
    aliased columns and keeps no basis of its design's null space (estimability)."""
    if not (hasattr(result, "params") and hasattr(result, "vcov") and hasattr(result, "model")):
        raise ValueError(f"result must be a fitted GLMMResult, got {type(result).__name__}")
    design = getattr(result, "design", None)
    if design is None:
        raise ValueError(
            f"{what} needs a result fitted from a formula (glmm_binomial.fit): this one was "
            "fitted from arrays (the spreadsheet path or fit_model), whose columns carry no "
            "factor structure to build a reference grid from"
        )
    if design.dropped_columns and getattr(design, "null_basis", None) is None:
        raise ValueError(
            f"{what}: the fit dropped aliased columns ({', '.join(design.dropped_columns)}): "
            "this fit keeps no basis of its design's null space (one saved by an earlier "
            "version), so which means are estimable is not known"
        )
    return design


def _as_values(name: str, value: Any) -> list[Any]:
    if isinstance(value, (str, bytes)) or np.ndim(value) == 0:
        return [value]
    values = list(np.asarray(value, dtype=object).ravel())
    if not values:
        raise ValueError(f"at: no values given for '{name}'")
    return values


def _numeric_at(name: str, value: Any) -> tuple[float, ...]:
    values = _as_values(name, value)
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"at: '{name}' is a numeric variable; give numbers, got {value!r}"
        ) from None
    if not np.all(np.isfinite(numbers)):
        raise ValueError(f"at: the values of '{name}' must be finite, got {value!r}")
    return tuple(float(v) for v in numbers)


def _factor_at(name: str, value: Any, levels: tuple[Any, ...]) -> tuple[Any, ...]:
    keys = {label_key(level): level for level in levels}
    chosen = []
    for v in _as_values(name, value):
        key = label_key(v)
        if key not in keys:
            raise ValueError(
                f"at: '{v}' is not a level of factor '{name}' "
                f"(levels: {', '.join(map(str, levels))})"
            )
        chosen.append(keys[key])
    return tuple(chosen)


def _product_index(sizes: Sequence[int]) -> NDArray[np.intp]:
    """The level indices (rows x variables) of every combination of variables with ``sizes``
    levels, the first varying fastest (R's expand.grid order)."""
    n = int(np.prod(sizes)) if len(sizes) else 1
    if not len(sizes):
        return np.zeros((1, 0), dtype=np.intp)
    return np.stack(np.unravel_index(np.arange(n), tuple(sizes), order="F"), axis=1)


def _level_code(index: NDArray[np.intp], sizes: Sequence[int]) -> tuple[NDArray[np.intp], int]:
    """Each row's combination of levels (the columns of ``index``, with ``sizes`` levels) as
    one integer, the first column fastest (as _product_index orders them), and how many
    combinations there are."""
    n = int(np.prod(sizes)) if len(sizes) else 1
    if not len(sizes):
        return np.zeros(len(index), dtype=np.intp), 1
    code = np.ravel_multi_index(tuple(index.T), tuple(sizes), order="F")
    return np.asarray(code, dtype=np.intp), n


def _grid_index(grid: ReferenceGrid) -> NDArray[np.intp]:
    """The level index of each grid row per variable (the rows of _expand's frame)."""
    return _product_index([len(levels) for levels in grid.levels.values()])


def _grid_code(
    grid: ReferenceGrid, index: NDArray[np.intp], variables: Sequence[str]
) -> tuple[NDArray[np.intp], int]:
    """_level_code of the grid rows' (``index``) levels of ``variables``."""
    names = list(grid.levels)
    columns = [names.index(v) for v in variables]
    return _level_code(index[:, columns], [len(grid.levels[v]) for v in variables])


def _expand(
    levels: dict[str, tuple[Any, ...]], factors: Sequence[str]
) -> tuple[pd.DataFrame, NDArray[np.intp]]:
    """All combinations, first variable fastest (R's expand.grid), and each row's level
    index per variable (rows x variables); variables not in ``factors`` as numbers."""
    names = list(levels)
    index = _product_index([len(levels[v]) for v in names])
    n = len(index)
    columns: dict[str, Any] = {}
    for j, v in enumerate(names):
        values = np.empty(n, dtype=object)
        values[:] = [levels[v][i] for i in index[:, j]]
        columns[v] = values
    frame = pd.DataFrame(columns, index=pd.RangeIndex(n))
    for v in names:  # numeric variables as numbers, so the design's transforms apply
        if v not in factors:
            frame[v] = frame[v].astype(np.float64)
    return frame, index


def _design_rows(design: Any, frame: pd.DataFrame) -> tuple[FloatArray, FloatArray | None]:
    """The fixed-effects design rows of the grid's frame (its offsets are _offset_values'): the
    fit's columns, and every column of the formula's where the fit dropped aliased ones (else
    None)."""
    aliased = bool(design.dropped_columns)
    built = new_data_design(
        design, frame, offset=np.zeros(len(frame)), random=False, all_fixed=aliased
    )
    if not bool(np.all(built.complete)):
        raise ValueError("the reference grid has rows the fit's design cannot be built for")
    x = np.asarray(built.x, dtype=np.float64)
    if not aliased:
        return x, None
    return x[:, list(design.kept_columns)], x


ESTIMABLE_TOL = 1e-8
"""estimable_rows' tolerance (estimability's is.estble default)."""


def estimable_rows(full: FloatArray, null_basis: FloatArray) -> NDArray[np.bool_]:
    """Which rows l of ``full`` (linear functions of all the formula's coefficients) are
    estimable: |N'l|^2 < ESTIMABLE_TOL |l|^2 (|l|^2 taken as 1 below ESTIMABLE_TOL), N the
    orthonormal null-space basis."""
    check = full @ null_basis
    size = np.einsum("ij,ij->i", full, full)
    size = np.where(size < ESTIMABLE_TOL, 1.0, size)
    return np.asarray(np.einsum("ij,ij->i", check, check) < ESTIMABLE_TOL * size)


OFFSET_NAME = ".offset."
"""The grid variable of an offset with two distinct values over the fit's rows (emmeans')."""


def _offset_values(
    result: GLMMResult, design: Any, offset: float | None, what: str
) -> tuple[float, ...]:
    """The grid's offset values (module docstring): ``offset`` when given; else, as emmeans'
    .offset. covariate, the fit's offsets over its rows at their two values when they take
    two (cov.keep = "2"), at their one value, or at their mean (0 without offsets)."""
    if offset is not None:
        if (
            isinstance(offset, bool)
            or not isinstance(offset, (int, float))
            or not np.isfinite(offset)
        ):
            raise ValueError(f"offset must be a finite number or None, got {offset!r}")
        return (float(offset),)
    has_offset = bool(design.formula.offsets) or design.offset_source != "none"
    if not has_offset:
        return (0.0,)
    rows = np.asarray(result.model.offset, dtype=np.float64)
    if rows.size == 0:
        raise ValueError(
            f"{what}: the fit keeps no rows (a Dask fit), so the mean of its offsets is not "
            "known: give the grid's offset with offset="
        )
    distinct = np.unique(rows)
    if distinct.size <= 2:
        return tuple(float(v) for v in distinct)
    return (float(rows.mean()),)


def reference_grid(
    result: GLMMResult,
    at: Mapping[str, Any] | None = None,
    offset: float | None = None,
    what: str = "emmeans",
) -> ReferenceGrid:
    """The reference grid of a fit (module docstring). ``at`` maps variables to values: a
    subset of a factor's levels, or numbers for a numeric variable. ``offset``: every row's
    offset (None: the fit's offsets as emmeans takes them: _offset_values)."""
    design = _check_result(result, what)
    summaries = {s.name: s for s in design.variables}
    names = list(summaries)
    if not names:  # a fit made before summaries were kept, or a Dask fit: the fixed variables
        from glmm_binomial.model.formula import expression_variables  # noqa: PLC0415
        from glmm_binomial.model.variable_summary import formula_order  # noqa: PLC0415

        found = set(expression_variables(design.formula.fixed))
        for expr in design.formula.offsets:
            found |= expression_variables(expr)
        names = formula_order(found, design.formula.fixed, *design.formula.offsets)
    factors = encoded_factor_levels(design, names)
    at = {} if at is None else at
    if not isinstance(at, Mapping):
        raise ValueError(f"at must be a dict of variable -> values, got {type(at).__name__}")
    unknown = [k for k in at if k not in names]
    if unknown:
        raise ValueError(
            f"at names {', '.join(map(repr, unknown))}, not a variable of the fixed part "
            f"(variables: {', '.join(names) or 'none'})"
        )
    offsets = _offset_values(result, design, offset, what)
    levels: dict[str, tuple[Any, ...]] = {}
    factor_like: list[str] = []
    factor_names: list[str] = []
    counted: list[str] = []
    for v in names:
        summary = summaries.get(v)
        if v in factors or (summary is not None and summary.kind == "factor"):
            base = factors.get(v) or (summary.levels if summary is not None else ())
            levels[v] = _factor_at(v, at[v], base) if v in at else base
            factor_like.append(v)
            factor_names.append(v)
            counted.append(v)
        elif v in at:
            levels[v] = _numeric_at(v, at[v])
            if len(levels[v]) > 1:
                factor_like.append(v)
        elif summary is not None and summary.levels:
            levels[v] = summary.levels  # emmeans' cov.keep = "2": kept at its values
            factor_like.append(v)
            counted.append(v)
        elif summary is not None and np.isfinite(summary.mean):
            levels[v] = (summary.mean,)
        else:
            raise ValueError(
                f"{what}: the fit keeps no mean of the numeric variable '{v}' (a Dask fit "
                f"keeps no rows): give its value with at={{'{v}': value}}"
            )
    if len(offsets) > 1:  # emmeans' .offset., last of the grid's variables
        levels[OFFSET_NAME] = offsets
        factor_like.append(OFFSET_NAME)
        counted.append(OFFSET_NAME)
    size = int(np.prod([len(x) for x in levels.values()])) if levels else 1
    if size > GRID_LIMIT:
        raise ValueError(
            f"the reference grid would have {size} rows (more than {GRID_LIMIT}); "
            "restrict it with at="
        )
    frame, _ = _expand(levels, factor_names)
    x, full = _design_rows(design, frame)
    if len(offsets) > 1:
        o = frame[OFFSET_NAME].to_numpy(dtype=np.float64)
    else:
        o = np.full(len(frame), offsets[0])
    return ReferenceGrid(
        frame,
        levels,
        x,
        o,
        tuple(factor_like),
        summaries,
        tuple(factor_names),
        full,
        None if full is None else design.null_basis,
        tuple(counted),
    )


# --------------------------------------------------------------------------------------------
# Marginal means
# --------------------------------------------------------------------------------------------


def _parse_specs(specs: Any, by: Any) -> tuple[list[str], list[str]]:
    if isinstance(specs, str):
        text = specs.strip()
        left, tilde, right = text.partition("~")
        if tilde and left.strip():
            # emmeans' two-sided form returns the means and their contrasts together.
            raise ValueError(
                f"specs {specs!r} is emmeans' two-sided form (means and contrasts at once): "
                f"here emm = emmeans(result, {right.strip()!r}), then "
                f"contrast(emm, {left.strip()!r}) (pairs(emm) for pairwise)"
            )
        if text.startswith("~"):
            text = text[1:]
        main, _, rest = text.partition("|")
        spec_list = [s.strip() for s in re.split(r"[+*:]", main) if s.strip()]
        by_from_specs = [s.strip() for s in re.split(r"[+*:]", rest) if s.strip()]
    elif isinstance(specs, Sequence) and all(isinstance(s, str) for s in specs):
        spec_list, by_from_specs = [s.strip() for s in specs], []
    else:
        raise ValueError(f"specs must be a variable name or a list of them, got {specs!r}")
    if not spec_list:
        raise ValueError(f"specs names no variable: {specs!r}")
    return spec_list, by_from_specs + _by_names(by)


def _by_names(by: Any) -> list[str]:
    """`by` as a list of variable names (None: none)."""
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    if isinstance(by, Sequence) and all(isinstance(b, str) for b in by):
        return list(by)
    raise ValueError(f"by must be a variable name or a list of them, got {by!r}")


def _check_names(argument: str, names: list[str], grid: ReferenceGrid) -> None:
    unknown = [n for n in names if n not in grid.levels]
    if unknown:
        raise ValueError(
            f"{argument} names {', '.join(map(repr, unknown))}, not a variable of the fixed "
            f"part (variables: {', '.join(grid.levels) or 'none'})"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{argument} names a variable twice: {names!r}")


def _average(
    grid: ReferenceGrid,
    primary: list[str],
    linfct: FloatArray,
    offset: FloatArray,
    weights: FloatArray | None = None,
    offset_weights: FloatArray | None = None,
) -> tuple[pd.DataFrame, FloatArray, FloatArray, NDArray[np.bool_]]:
    """Averages of the grid rows per combination of ``primary`` (first fastest), each grid
    row weighted by ``weights`` (None: equally; row_weights) and its offset by
    ``offset_weights`` (None: equally): the combinations' frame, linear functions and
    offsets, and which combinations have no weight (their rows 0: NaN means)."""
    combo, n_combos = _grid_code(grid, _grid_index(grid), primary)
    w = np.ones(len(combo)) if weights is None else weights
    totals = np.bincount(combo, weights=w, minlength=n_combos)
    empty = totals <= 0.0
    sums = np.zeros((n_combos, linfct.shape[1]))
    np.add.at(sums, combo, w[:, None] * linfct)
    averaged = sums / np.where(empty, 1.0, totals)[:, None]
    frame, _ = _expand({v: grid.levels[v] for v in primary}, grid.factors)
    if len(offset) == 0 or np.all(offset == offset[0]):
        # One offset (the grid's is one value but for emmeans' .offset.): its mean is itself.
        return frame, averaged, np.full(n_combos, offset[0] if len(offset) else 0.0), empty
    ow = np.ones(len(combo)) if offset_weights is None else offset_weights
    offset_totals = np.bincount(combo, weights=ow, minlength=n_combos)
    offset_sums = np.bincount(combo, weights=ow * offset, minlength=n_combos)
    offsets = offset_sums / np.where(offset_totals > 0, offset_totals, 1.0)
    return frame, averaged, offsets, empty


def weights_option(weights: Any) -> str | FloatArray:
    """emmeans' weights= argument: one of WEIGHTS (a unique prefix names one), or a vector of
    finite non-negative numbers with a positive sum (returned divided by the largest)."""
    if isinstance(weights, str):
        found = [w for w in WEIGHTS if w.startswith(weights)] if weights else []
        if len(found) != 1:
            raise ValueError(
                f"weights must be one of {', '.join(map(repr, WEIGHTS))} or a list of numbers, "
                f"got {weights!r}"
            )
        return found[0]
    try:
        values = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.empty(0)
    if (
        isinstance(weights, (bool, np.bool_))
        or values.ndim != 1
        or values.size == 0
        or not np.all(np.isfinite(values))
        or np.any(values < 0)
        or values.sum() <= 0
    ):
        raise ValueError(
            f"weights must be one of {', '.join(map(repr, WEIGHTS))} or a list of finite "
            f"non-negative numbers with a positive sum, got {weights!r}"
        )
    # Relative to the largest: the same weights whatever their scale, and no sum of huge
    # ones that overflows.
    return np.asarray(values / values.max(), dtype=np.float64)


def cell_counts(result: GLMMResult, grid: ReferenceGrid) -> FloatArray:
    """emmeans' .wgt. of each grid row: how many of the fit's rows have the grid row's values
    of grid.counted (all grid rows 1 where no variable is counted)."""
    if not grid.counted:
        return np.ones(len(grid.frame))
    frame, _ = data_rows(
        result,
        "emmeans' weights from cell counts",
        ": use weights='equal' or give the weights as numbers",
    )
    if OFFSET_NAME in grid.counted:  # the fit's offset of each row, as emmeans' .offset.
        frame = frame.assign(**{OFFSET_NAME: np.asarray(result.model.offset, np.float64)})
    codes = np.column_stack(
        [
            pd.Index([label_key(level) for level in grid.levels[v]]).get_indexer(
                label_keys(frame[v].to_numpy())
            )
            for v in grid.counted
        ]
    )
    inside = (codes >= 0).all(axis=1)  # a level that at= left out of the grid counts nowhere
    sizes = [len(grid.levels[v]) for v in grid.counted]
    cell_of_row, n_cells = _level_code(codes[inside], sizes)
    cell_of_grid, _ = _grid_code(grid, _grid_index(grid), grid.counted)
    per_cell = np.bincount(cell_of_row, minlength=n_cells)
    return per_cell[cell_of_grid].astype(np.float64)


def row_weights(
    result: GLMMResult,
    grid: ReferenceGrid,
    primary: list[str],
    option: str | FloatArray,
    counts: FloatArray | None = None,
) -> tuple[FloatArray | None, list[str]]:
    """Each grid row's weight in the mean of its ``primary`` combination under emmeans'
    weights ``option`` (module docstring; None: equal weights) and the note that says so."""
    names = list(grid.levels)
    averaged = [v for v in names if v not in primary and len(grid.levels[v]) > 1]
    if not averaged or (isinstance(option, str) and option == "equal"):
        return None, []
    index = _grid_index(grid)
    if not isinstance(option, str):
        cell, n_cells = _grid_code(grid, index, averaged)  # the averaged-over combination
        if option.size != n_cells:
            raise ValueError(
                f"weights: {option.size} numbers given; the means average over {n_cells} "
                f"combinations of {', '.join(averaged)} (the first varying fastest)"
            )
        given = np.asarray(option[cell], dtype=np.float64)
        return given, ["weights: as given, over the combinations averaged"]
    if counts is None:
        counts = cell_counts(result, grid)  # a clear error for a fit that keeps no rows
    note = [f"weights: {option}, from the cell counts of the fit's rows"]
    levels = {v: len(grid.levels[v]) for v in names}
    return _count_weights(levels, index, averaged, option, counts), note


def _some_counts(counts: FloatArray) -> FloatArray:
    """emmeans' counts, 1 each where none has data (it then weighs the cells equally)."""
    return counts if np.any(counts > 0) else counts + 1.0


def _count_weights(
    sizes: dict[str, int],
    index: NDArray[np.intp],
    averaged: list[str],
    option: str,
    counts: FloatArray,
) -> FloatArray:
    """Row weights of emmeans' count-based options over the rows of ``index`` (level indices
    of the variables of ``sizes``, in that order) that are averaged over ``averaged``:
    "proportional" the count of the row's combination of ``averaged`` summed over the rest,
    "outer" the product of those variables' marginal proportions times the total, "cells" the
    row's count, "flat" 1 where it has data. As in emmeans, the first two count 1 for each
    cell where no cell has data; the last two take the counts as they are."""
    if option == "cells":
        return counts
    if option == "flat":
        return (counts > 0).astype(np.float64)
    counts = _some_counts(counts)
    columns = {v: j for j, v in enumerate(sizes)}
    if option == "proportional":
        cell, n_cells = _level_code(
            index[:, [columns[v] for v in averaged]], [sizes[v] for v in averaged]
        )
        return np.asarray(np.bincount(cell, weights=counts, minlength=n_cells)[cell], np.float64)
    total = float(counts.sum())
    w = np.full(len(index), total)
    for v in averaged:
        margin = np.bincount(index[:, columns[v]], weights=counts, minlength=sizes[v])
        w *= margin[index[:, columns[v]]] / total
    return w


def _fixed_terms(design: Any) -> list[set[str]]:
    """The variables of each fixed-effects term but the intercept (R's factors attribute)."""
    from glmm_binomial.model.design import term_variables  # noqa: PLC0415
    from glmm_binomial.model.formula import expression_variables  # noqa: PLC0415

    return [
        set().union(*(expression_variables(e) for e in exprs))
        for label, exprs in term_variables(design).items()
        if label != "1"
    ]


def _counts_or_none(result: GLMMResult, grid: ReferenceGrid) -> FloatArray | None:
    """cell_counts, or None for a fit that keeps no rows (the nesting is then the terms') and
    where no two variables of the grid vary (no nesting to find: the data are not read)."""
    if sum(len(levels) > 1 for levels in grid.levels.values()) < 2:
        return None
    try:
        return cell_counts(result, grid)
    except ValueError:
        return None


def grid_nesting(
    result: GLMMResult, grid: ReferenceGrid, counts: FloatArray | None
) -> dict[str, list[str]]:
    """emmeans' nesting of the grid's variables (.find_nests): from the cell counts
    (_data_nesting; not without ``counts``) and from the model's terms (_term_nesting),
    closed (closure_of_nesting). Variable -> the variables it is nested in."""
    names = [v for v in grid.levels if len(grid.levels[v]) > 1]
    if len(names) < 2:
        return {}
    found: dict[str, list[str]] = {}
    if counts is not None:
        columns = [list(grid.levels).index(v) for v in names]
        found = _data_nesting(names, _grid_index(grid)[:, columns], counts)
    terms = _term_nesting(names, _fixed_terms(result.design))
    return closure_of_nesting(found, terms)


@dataclass(frozen=True)
class Marginal:
    """The means (or trends) of one emmeans call before inference: the grid of the means
    (columns ``primary``: the specs, the nesting variables they need, the by variables), L
    over the fit's columns and over every column (``full``, rank-deficient fits), offsets,
    which means have no data in their cells (``empty``), the specs and by variables of the
    result, and notes."""

    frame: pd.DataFrame
    linfct: FloatArray
    full: FloatArray | None
    offsets: FloatArray
    empty: NDArray[np.bool_]
    specs: list[str]
    by: list[str]
    notes: list[str]
    nesting: dict[str, tuple[str, ...]] = field(default_factory=dict)


def marginal(
    result: GLMMResult,
    grid: ReferenceGrid,
    spec_list: list[str],
    by_list: list[str],
    option: str | FloatArray,
    rows: FloatArray,
    full_rows: FloatArray | None,
    offset: FloatArray,
    found: tuple[FloatArray | None, dict[str, list[str]]] | None = None,
) -> Marginal:
    """The means of ``rows`` (the grid's design rows or their trends) per specs and by
    combination, as emmeans(grid, specs, by, weights) averages them, nesting included
    (emmeans' .nested_emm): a spec or by variable nested in others brings them into the specs;
    a nested variable averaged over is averaged within each level of its nesters over the
    levels seen there in the data, and those means then equally; and the combinations of a
    nested spec with its nesters that have no data are not shown (.find.nonempty.nests).
    ``found``: the grid's cell counts and nesting when the caller has them (joint_tests)."""
    if found is None:
        counts = _counts_or_none(result, grid)
        found = counts, grid_nesting(result, grid, counts)
    counts, nesting = found
    specs, by = list(spec_list), list(by_list)
    nested = [v for v in dict.fromkeys(spec_list + by_list) if v in nesting]
    if nested:
        nesters = [u for v in nested for u in nesting[v]]
        specs = list(dict.fromkeys(nested + nesters + spec_list))
        by = [b for b in by_list if b not in nested]
    primary = list(dict.fromkeys(specs + by))
    names = list(grid.levels)
    averaged_nested = [v for v in nesting if v in names and v not in primary]
    notes = []
    if nesting:
        notes.append(
            "nesting: "
            + "; ".join(f"{v} within {', '.join(within)}" for v, within in nesting.items())
        )
    w: FloatArray | None
    offset_w: FloatArray | None
    if averaged_nested and counts is not None:
        if not isinstance(option, str):
            raise ValueError(
                "weights: numbers cannot weigh means that average over a nested variable "
                f"({', '.join(averaged_nested)}: within {', '.join(nesting[averaged_nested[0]])}"
                "); give one of " + ", ".join(map(repr, WEIGHTS))
            )
        sizes = {v: len(grid.levels[v]) for v in grid.levels}
        index = _grid_index(grid)
        w = _nested_weights(sizes, index, primary, nesting, counts, option)[0]
        weight_note: list[str] = (
            [] if option == "equal" else [f"weights: {option}, in each stage of the nesting"]
        )
        offset_w = w
        if option in ("cells", "flat"):
            offset_w = _nested_weights(sizes, index, primary, nesting, counts, "equal")[0]
    else:
        w, weight_note = row_weights(result, grid, primary, option, counts)
        offset_w = None if isinstance(option, str) and option in ("cells", "flat") else w
    # emmeans averages the offset (.offset.) with the weights of the means, but equally
    # where they come from each cell's count ("cells", "flat": its fac.reduce is the mean).
    frame, linfct, offsets, empty = _average(grid, primary, rows, offset, w, offset_w)
    full = None if full_rows is None else _average(grid, primary, full_rows, offset, w)[1]
    notes = _averaged_note(grid, primary) + weight_note + notes
    by_out = list(by_list)
    if any(b in nested for b in by_list):
        by_out = list(
            dict.fromkeys([u for b in by_list if b in nested for u in nesting[b]] + by_list)
        )
    shown = np.ones(len(frame), dtype=bool)
    if nested and counts is not None:
        shown = _nonempty_nests(grid, primary, nesting, nested, counts)
    if not shown.all():
        frame = frame[shown].reset_index(drop=True)
        linfct, offsets, empty = linfct[shown], offsets[shown], empty[shown]
        full = None if full is None else full[shown]
    return Marginal(
        frame,
        linfct,
        full,
        offsets,
        empty,
        [v for v in primary if v not in by_out],
        by_out,
        notes,
        {v: tuple(u for u in nesting[v] if u in primary) for v in nesting if v in primary},
    )


def _nested_weights(
    sizes: dict[str, int],
    index: NDArray[np.intp],
    primary: list[str],
    nesting: dict[str, list[str]],
    counts: FloatArray,
    option: str,
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Each row's weight in its ``primary`` mean as emmeans' .nested_emm averages, for rows
    with level indices ``index`` over the variables of ``sizes`` (a full product) and cell
    counts ``counts``: the nested variable averaged over with the most nesters (the last of
    equals) is averaged within each level of its nesters and of the other nested variables
    averaged over (the groups), over its levels seen there, with the weights ``option`` on
    those rows (stage 1); the group means are then averaged as emmeans averages a grid of
    them, with their summed counts, nesting and all (stage 2, recursively). A mean that a
    stage leaves NaN (no data in the cells of a group, for "cells" or "flat") that enters
    the next stage's average has all its rows at weight 0. Also which rows enter the average
    at all (emmeans drops the levels not seen from a nested average)."""
    names = list(sizes)
    columns = {v: j for j, v in enumerate(names)}
    averaged = [v for v in names if v not in primary and sizes[v] > 1]
    nested = [v for v in nesting if v in averaged]
    every = np.ones(len(index), dtype=bool)
    if not nested:
        if option == "equal" or not averaged:
            return np.ones(len(index)), every
        return _count_weights(sizes, index, averaged, option, counts), every
    most = max(len(nesting[v]) for v in nested)
    variable = [v for v in nested if len(nesting[v]) == most][-1]
    groups = list(dict.fromkeys(nesting[variable] + [v for v in nested if v != variable]))

    def code(variables: list[str]) -> tuple[NDArray[np.intp], int]:
        return _level_code(index[:, [columns[v] for v in variables]], [sizes[v] for v in variables])

    group, _ = code(groups)
    # A level of the variable is kept in a group where some cell of that pair has data.
    pair, n_pairs = code([variable, *groups])
    seen = np.zeros(n_pairs, dtype=bool)
    seen[pair[counts > 0]] = True
    kept = seen[pair]
    # Stage 1, within each group over its kept rows.
    stage_vars = list(dict.fromkeys(primary + groups))
    rest = [v for v in names if v not in stage_vars]
    first = kept.astype(np.float64)
    group_counts = counts * kept
    for g in np.unique(group[kept]):
        rows = kept & (group == g)
        own = _some_counts(counts[rows])
        group_counts[rows] = own
        varying = [v for v in rest if np.unique(index[rows, columns[v]]).size > 1]
        if option != "equal" and varying:
            first[rows] = _count_weights(sizes, index[rows], varying, option, counts[rows])
    cell, n_cells = code(stage_vars)
    totals = np.bincount(cell, weights=first, minlength=n_cells)
    has_rows = np.bincount(cell, weights=kept.astype(np.float64), minlength=n_cells) > 0
    nan_cell = has_rows & (totals <= 0)
    # Stage 2: the grid of group means, first variable fastest, as _expand orders it.
    stage_sizes = {v: sizes[v] for v in stage_vars}
    stage_index = _product_index(list(stage_sizes.values()))
    stage_nesting = {
        v: [u for u in within if u in stage_sizes]
        for v, within in nesting.items()
        if v in stage_sizes and any(u in stage_sizes for u in within)
    }
    second, entered = _nested_weights(
        stage_sizes,
        stage_index,
        primary,
        stage_nesting,
        np.asarray(np.bincount(cell, weights=group_counts, minlength=n_cells), np.float64),
        option,
    )
    weights = np.where(
        kept & (totals[cell] > 0),
        second[cell] * first / np.where(totals[cell] > 0, totals[cell], 1.0),
        0.0,
    )
    # emmeans' NaN of a group mean makes its mean NaN, whatever that group's weight.
    primary_code, n_means = _level_code(
        stage_index[:, [stage_vars.index(v) for v in primary]], [sizes[v] for v in primary]
    )
    bad = np.zeros(n_means, dtype=bool)
    bad[primary_code[nan_cell & entered]] = True
    return np.where(bad[primary_code[cell]], 0.0, weights), kept & entered[cell]


def _nonempty_nests(
    grid: ReferenceGrid,
    primary: list[str],
    nesting: dict[str, list[str]],
    nested: list[str],
    counts: FloatArray,
) -> NDArray[np.bool_]:
    """Which means emmeans shows (.find.nonempty.nests): for each nested variable of the specs
    with its nesters, a combination of their levels without data in any cell is left out."""
    mean_index = _product_index([len(grid.levels[v]) for v in primary])
    mean_of_row, n_means = _grid_code(grid, _grid_index(grid), primary)
    per_mean = np.bincount(mean_of_row, weights=counts, minlength=n_means)
    shown = np.ones(n_means, dtype=bool)
    for v in nested:
        variables = [v, *nesting[v]]
        code, n_nests = _level_code(
            mean_index[:, [primary.index(u) for u in variables]],
            [len(grid.levels[u]) for u in variables],
        )
        shown &= np.bincount(code, weights=per_mean, minlength=n_nests)[code] > 0
    return shown


def _bias_adjusted(link: Family, sigma: float) -> tuple[Any, Any]:
    """emmeans' .make.bias.adj.link: h(eta) + sigma^2/2 h''(eta) and its derivative, h'' and
    h''' by central differences of h' with step BIAS_STEP."""
    half = 0.5 * BIAS_STEP
    sigma22 = 0.5 * sigma * sigma

    def second(eta: FloatArray) -> FloatArray:
        return (link.mu_eta(eta + half) - link.mu_eta(eta - half)) / BIAS_STEP

    def inverse(eta: FloatArray) -> FloatArray:
        return link.inverse_link(eta) + sigma22 * second(eta)

    def derivative(eta: FloatArray) -> FloatArray:
        return link.mu_eta(eta) + sigma22 * (second(eta + half) - second(eta - half)) / BIAS_STEP

    return inverse, derivative


def limit_covariance(result: Any) -> LimitCovariance | None:
    """A separated fit's covariance in the limit (FitOutput.vcov_limit); None for a fit
    without one or a result-like object without a FitOutput."""
    return getattr(getattr(result, "fit_output", None), "vcov_limit", None)


@dataclass(frozen=True, eq=False)
class EMMeans:
    """Estimated marginal means (or trends) with the linear functions behind them.

    ``grid`` holds one row per mean (the ``specs`` columns, then the ``by`` columns); the
    link-scale estimate of row r is ``linfct[r] @ beta + offset[r]`` with covariance
    ``linfct @ vcov @ linfct.T``. ``link`` is None for trends (no back-transformation).
    ``table`` is the summary on the scale ``type``: the grid columns and estimate, std_error,
    ci_lower, ci_upper; ``notes`` say what was averaged over and how the numbers were made.
    ``limit``: a separated fit's covariance in the limit (FitOutput.vcov_limit), which gives
    the means and contrasts that stay finite their variance. For a fit that dropped aliased
    columns, ``linfct_full`` holds L over every column of the formula and ``null_basis`` the
    full design's null space: a mean that is not estimable (``estimable``) is NaN. ``empty``
    marks means without data in any cell they average (weights "cells" or "flat"; their
    linfct rows 0): NaN, as is every contrast that uses one; None when there are none.
    ``nesting``: each grid variable nested in others (emmeans' nesting), with those of its
    nesters in the grid."""

    grid: pd.DataFrame
    linfct: FloatArray
    beta: FloatArray
    vcov: FloatArray
    offset: FloatArray
    specs: tuple[str, ...]
    by: tuple[str, ...] = ()
    type: str = "link"
    link: Family | None = None
    level: float = 0.95
    bias_adjust: bool = False
    sigma: float | None = None
    estimate_name: str = "emmean"
    notes: tuple[str, ...] = field(default=())
    limit: LimitCovariance | None = None
    linfct_full: FloatArray | None = None
    null_basis: FloatArray | None = None
    empty: NDArray[np.bool_] | None = None
    nesting: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @cached_property
    def estimable(self) -> NDArray[np.bool_]:
        """Which means are estimable (estimable_rows of linfct_full; all for a fit without
        aliased columns)."""
        if self.linfct_full is None or self.null_basis is None:
            return np.ones(len(self.linfct), dtype=bool)
        return estimable_rows(self.linfct_full, self.null_basis)

    @cached_property
    def link_estimate(self) -> FloatArray:
        """L beta + offset (link scale)."""
        return np.asarray(self.linfct @ self.beta + self.offset, dtype=np.float64)

    @cached_property
    def link_covariance(self) -> FloatArray:
        """L V L' (link scale); NaN only in the rows of L that use a coefficient with no
        variance in a combination that diverges (a separated fit's:
        numerics.covariance.transform_covariance with its limit)."""
        return transform_covariance(self.linfct, self.vcov, self.limit)

    @cached_property
    def link_std_error(self) -> FloatArray:
        return np.sqrt(np.clip(np.diag(self.link_covariance), 0.0, None))

    def response_functions(self, link: Family) -> tuple[Any, Any]:
        """The back-transformation eta -> mean and its derivative: ``link``'s inverse, or
        emmeans' bias-adjusted one with ``bias_adjust`` and a ``sigma``."""
        if self.bias_adjust and self.sigma is not None:
            return _bias_adjusted(link, self.sigma)
        return link.inverse_link, link.mu_eta

    @cached_property
    def table(self) -> pd.DataFrame:
        """The summary on the scale ``type``, intervals at ``level`` (class docstring)."""
        return self.table_with(float(special.ndtri(0.5 + 0.5 * self.level)))

    def table_with(self, multiplier: float | FloatArray) -> pd.DataFrame:
        """``table`` with intervals estimate -/+ multiplier SE on the link scale (one number,
        or one per mean: simultaneous intervals), back-transformed as ``table``'s."""
        eta, se = self.link_estimate, self.link_std_error
        # A mean that moves along a separated fit's diverging path has no estimate, nor has
        # one that the fit's columns cannot estimate (nor a standard error then).
        eta = np.where(moving_rows(self.linfct, self.limit), np.nan, eta)
        shown = self.estimable if self.empty is None else self.estimable & ~self.empty
        eta = np.where(shown, eta, np.nan)
        se = np.where(shown, se, np.nan)
        low, high = eta - multiplier * se, eta + multiplier * se
        if self.type == "response" and self.link is not None:
            inverse, derivative = self.response_functions(self.link)
            estimate = inverse(eta)
            std_error = np.abs(derivative(eta)) * se
            low, high = inverse(low), inverse(high)
        else:
            estimate, std_error = eta, se
        out = self.grid.copy()
        out["estimate"] = estimate
        out["std_error"] = std_error
        out["ci_lower"] = np.minimum(low, high)
        out["ci_upper"] = np.maximum(low, high)
        out.attrs.update(
            {
                "type": self.type,
                "estimate_name": self.estimate_name,
                "level": self.level,
                "notes": self.notes,
            }
        )
        return out

    def __repr__(self) -> str:
        lines = [self.table.to_string(index=False)]
        lines.extend(self.notes)
        return "\n".join(lines)

    __str__ = __repr__


def regrid(emm: EMMeans) -> EMMeans:
    """The means on the response scale as a grid of their own (emmeans' regrid(emm)): each
    estimate the back-transformed mean p = h(eta) (bias-adjusted as ``emm`` is), its linear
    functions the delta method's D L (D = diag(h'(eta))), so that the covariance is
    D L V L' D; intervals are then p -/+ z SE, and contrasts differences of probabilities
    (risk differences) with their delta-method standard errors, where contrasts of ``emm``
    on the response scale are odds ratios. Means that are NaN stay NaN."""
    if not isinstance(emm, EMMeans):
        raise ValueError(f"emm must be an EMMeans (from emmeans()), got {type(emm).__name__}")
    if emm.link is None:
        raise ValueError(
            "regrid: these estimates have no response scale (trends, or means regridded "
            "already): they are as they are"
        )
    eta = emm.link_estimate
    inverse, derivative = emm.response_functions(emm.link)
    scale = np.asarray(derivative(eta), dtype=np.float64)
    estimate = np.asarray(inverse(eta), dtype=np.float64)
    linfct = scale[:, None] * emm.linfct
    # Linear in beta at the estimates: linfct @ beta + offset is h(eta) there.
    offset = estimate - linfct @ emm.beta
    note = "regridded: the means on the response scale, linear there (delta method)"
    return replace(
        emm,
        linfct=linfct,
        offset=offset,
        type="response",
        link=None,
        bias_adjust=False,
        sigma=None,
        estimate_name="prob",
        notes=(*emm.notes, note),
        linfct_full=None if emm.linfct_full is None else scale[:, None] * emm.linfct_full,
    )


def _fit_notes(result: Any) -> list[str]:
    method = getattr(result, "method_object", None)
    if method is not None and method.posterior:
        return [
            f"method {method.name}: at the posterior means of beta, with their posterior "
            "covariance (standard errors are posterior SDs)"
        ]
    return []


def _averaged_note(grid: ReferenceGrid, primary: list[str]) -> list[str]:
    over = [v for v in grid.factor_like if v not in primary and len(grid.levels[v]) > 1]
    return [f"averaged over the levels of: {', '.join(over)}"] if over else []


def _default_sigma(result: Any) -> float:
    variance, _ = random_variance(result.model, result.covariance_matrices())
    return float(np.sqrt(variance))


def emmeans(
    result: GLMMResult,
    specs: str | Sequence[str],
    by: str | Sequence[str] | None = None,
    at: Mapping[str, Any] | None = None,
    type: str = "link",  # noqa: A002 - emmeans' name
    bias_adjust: bool = False,
    sigma: float | None = None,
    conf_level: float = 0.95,
    offset: float | None = None,
    weights: str | Sequence[float] = "equal",
    *,
    level: float | None = None,
) -> EMMeans:
    """Estimated marginal means of ``specs`` (a variable, a list, or emmeans' "a | b" form),
    per ``by`` group, on the link or response scale, as emmeans(result, specs, by, at, type,
    bias.adjust, sigma, weights) computes them (module docstring), with intervals at
    conf_level (emmeans' level, accepted as the deprecated name of conf_level). offset: the
    link-scale offset of every grid row, replacing the fit's (emmeans' offset=); None: the
    fit's offsets as emmeans takes them, at their mean over its rows, or at both values when
    they take two (module docstring). weights: "equal",
    "proportional", "outer", "cells", "flat" (from the fit's cell counts) or the weights of
    the combinations averaged over (module docstring)."""
    conf_level = renamed_level(conf_level, level)
    if type not in TYPES:
        raise ValueError(f"type must be 'link' or 'response', got {type!r}")
    if not isinstance(bias_adjust, (bool, np.bool_)):
        raise ValueError(f"bias_adjust must be True or False, got {bias_adjust!r}")
    conf_level = fraction(conf_level, "conf_level")
    option = weights_option(weights)
    spec_list, by_list = _parse_specs(specs, by)
    grid = reference_grid(result, at, offset, "emmeans")
    _check_names("specs", spec_list, grid)
    _check_names("by", by_list, grid)
    both = [v for v in spec_list if v in by_list]
    if both:
        raise ValueError(f"by names {', '.join(map(repr, both))}, already in specs")
    means = marginal(result, grid, spec_list, by_list, option, grid.linfct, grid.full, grid.offset)
    linfct, full, offsets, empty = means.linfct, means.full, means.offsets, means.empty
    notes = means.notes + _fit_notes(result)
    notes += _estimability_note(result, full, grid.null_basis, "mean", empty)
    link = result.model.family
    used_sigma: float | None = None
    if bias_adjust:
        if sigma is None:
            used_sigma = _default_sigma(result)
            how = "the square root of the random-effect variance, mean z' Sigma z over the rows"
        else:
            used_sigma, how = non_negative(sigma, "sigma"), "given"
        if type == "response":
            notes.append(f"bias adjustment with sigma = {used_sigma:.6g} ({how})")
        else:
            notes.append("bias adjustment applies on the response scale only")
    elif sigma is not None:
        raise ValueError("sigma applies only with bias_adjust=True")
    if type == "response":
        notes.append(f"intervals back-transformed from the {link.link} scale")
    else:
        notes.append(f"on the {link.link} (not the response) scale")
    return EMMeans(
        grid=means.frame,
        linfct=linfct,
        beta=np.asarray(result.params, dtype=np.float64),
        vcov=np.asarray(result.vcov, dtype=np.float64),
        limit=limit_covariance(result),
        offset=offsets,
        specs=tuple(means.specs),
        by=tuple(means.by),
        type=type,
        link=link,
        level=conf_level,
        bias_adjust=bool(bias_adjust),
        sigma=used_sigma,
        estimate_name="prob" if type == "response" else "emmean",
        notes=tuple(notes),
        linfct_full=full,
        null_basis=grid.null_basis,
        empty=empty if empty.any() else None,
        nesting=means.nesting,
    )


def emtrends(
    result: GLMMResult,
    specs: str | Sequence[str],
    var: str,
    by: str | Sequence[str] | None = None,
    at: Mapping[str, Any] | None = None,
    conf_level: float = 0.95,
    delta: float | None = None,
    weights: str | Sequence[float] = "equal",
    *,
    level: float | None = None,
) -> EMMeans:
    """Slopes of the linear predictor (link scale) in the numeric variable ``var`` at the
    reference grid, averaged as emmeans' means, as emtrends(result, specs, var) computes them:
    the forward difference (x(var + h) - x(var)) / h with h = ``delta`` or 0.001 times the
    range of ``var`` over the fit's rows (module docstring); intervals at conf_level (level:
    its deprecated name); weights as emmeans'."""
    conf_level = fraction(renamed_level(conf_level, level), "conf_level")
    option = weights_option(weights)
    spec_list, by_list = _parse_specs(specs, by)
    grid = reference_grid(result, at, 0.0, "emtrends")  # offsets cancel in a trend
    if not isinstance(var, str) or var not in grid.levels:
        raise ValueError(
            f"var must name a numeric variable of the fixed part, got {var!r} "
            f"(variables: {', '.join(grid.levels) or 'none'})"
        )
    summary = grid.summaries.get(var)
    values = grid.frame[var]
    if summary is not None and summary.kind == "factor" or not pd.api.types.is_float_dtype(values):
        raise ValueError(f"var '{var}' is a factor; emtrends needs a numeric variable")
    _check_names("specs", spec_list, grid)
    _check_names("by", by_list, grid)
    if delta is None:
        if summary is None or not np.isfinite(summary.maximum - summary.minimum):
            raise ValueError(f"emtrends: the fit keeps no range of '{var}': give delta=")
        step = TREND_STEP * (summary.maximum - summary.minimum)
    elif isinstance(delta, bool) or not isinstance(delta, (int, float)) or not np.isfinite(delta):
        raise ValueError(f"delta must be a finite nonzero number, got {delta!r}")
    else:
        step = float(delta)
    if step == 0.0:
        raise ValueError(f"var '{var}' takes a single value in the fit: no trend; give delta=")
    design = result.design
    shifted = grid.frame.copy()
    shifted[var] = shifted[var] + step
    x_shifted, full_shifted = _design_rows(design, shifted)
    slopes = (x_shifted - grid.linfct) / step
    full_slopes = None
    if full_shifted is not None and grid.full is not None:
        full_slopes = (full_shifted - grid.full) / step
    trends = marginal(
        result, grid, spec_list, by_list, option, slopes, full_slopes, np.zeros(len(slopes))
    )
    linfct, full, empty = trends.linfct, trends.full, trends.empty
    notes = trends.notes + _fit_notes(result)
    notes += _estimability_note(result, full, grid.null_basis, "trend", empty)
    notes.append(f"slope of the linear predictor in {var} (difference step {step:.6g})")
    return EMMeans(
        grid=trends.frame,
        linfct=linfct,
        beta=np.asarray(result.params, dtype=np.float64),
        vcov=np.asarray(result.vcov, dtype=np.float64),
        limit=limit_covariance(result),
        offset=np.zeros(len(trends.frame)),
        specs=tuple(trends.specs),
        by=tuple(trends.by),
        type="link",
        link=None,
        level=conf_level,
        estimate_name=f"{var}.trend",
        notes=tuple(notes),
        linfct_full=full,
        null_basis=grid.null_basis,
        empty=empty if empty.any() else None,
        nesting=trends.nesting,
    )


def _estimability_note(
    result: Any,
    full: FloatArray | None,
    null_basis: FloatArray | None,
    what: str,
    empty: NDArray[np.bool_],
) -> list[str]:
    """The notes of means or trends without data in their cells (``empty``) and of a
    rank-deficient fit's: how many are NaN and why."""
    notes = []
    if empty.any():
        notes.append(
            f"{int(empty.sum())} {what}(s) NaN: no data in any cell they average (weights)"
        )
    if full is None or null_basis is None:
        return notes
    missing = int((~estimable_rows(full, null_basis) & ~empty).sum())
    dropped = ", ".join(result.design.dropped_columns)
    if not missing:
        return [*notes, f"the fit dropped aliased columns ({dropped}); every {what} is estimable"]
    return [
        *notes,
        f"{missing} {what}(s) not estimable (NaN; emmeans' nonEst): the fit dropped aliased "
        f"columns ({dropped}) and its columns do not determine them",
    ]


# --------------------------------------------------------------------------------------------
# Contrasts
# --------------------------------------------------------------------------------------------

_SAME: Any = object()


def _is_numeric_label(values: Sequence[Any]) -> bool:
    """emmeans' .is.num: every level reads as a number."""
    try:
        [float(label_key(v)) for v in values]
    except ValueError:
        return False
    return True


def _labels(
    frame: pd.DataFrame, columns: list[str], prefix: bool = True
) -> tuple[list[str], list[str]]:
    """Level labels of the rows as emmeans pastes them (numeric-looking levels prefixed with
    the variable's name unless not ``prefix``, as its enhance.levels, joined by spaces,
    parenthesized when they hold - + / or *), and the plain labels (R's as.character of the
    levels, joined by spaces)."""
    parts, plain = [], []
    for c in columns:
        keys = [label_key(v) for v in frame[c]]
        plain.append(keys)
        numeric = prefix and _is_numeric_label(list(frame[c]))
        parts.append([f"{c}{k}" for k in keys] if numeric else keys)
    labels = [" ".join(p) for p in zip(*parts, strict=True)]
    raw = [" ".join(p) for p in zip(*plain, strict=True)]
    return [f"({s})" if _PARENS.search(s) else s for s in labels], raw


def _control_index(ref: Any, raw: list[str], labels: list[str]) -> int:
    """The control level of trt.vs.ctrl: the first by default; else the level whose label is
    ``ref`` (a tuple for several columns), or, when no label matches, the 0-based position
    ``ref``."""
    if ref is None:
        return 0
    parts = ref if isinstance(ref, (tuple, list)) else (ref,)
    key = " ".join(label_key(r) for r in parts)
    if key in raw:
        return raw.index(key)
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool) and 0 <= ref < len(raw):
        return int(ref)
    raise ValueError(f"ref {ref!r} is neither a level ({', '.join(labels)}) nor a position")


def _family(
    method: Any, labels: list[str], raw: list[str], ref: Any
) -> tuple[FloatArray, list[str], str, bool]:
    """Coefficients (contrasts x levels), names, default adjustment and whether the family
    is pairwise (Tukey applies); ``raw`` are the plain level labels ``ref`` is matched to."""
    k = len(labels)
    rows: list[FloatArray] = []
    names: list[str] = []
    if isinstance(method, Mapping):
        for name, weights in method.items():
            try:
                w = np.asarray(weights, dtype=np.float64).ravel()
            except (TypeError, ValueError):
                w = np.empty(0)  # not numbers: refused below as the wrong weights
            if w.shape != (k,) or not np.all(np.isfinite(w)):
                raise ValueError(
                    f"method: the weights of contrast {name!r} must be {k} finite numbers "
                    f"(one per level: {', '.join(labels)})"
                )
            rows.append(w)
            names.append(str(name))
        return np.array(rows).reshape(len(rows), k), names, "none", False
    if method == "pairwise":
        for i in range(k):
            for j in range(i + 1, k):
                c = np.zeros(k)
                c[i], c[j] = 1.0, -1.0
                rows.append(c)
                names.append(f"{labels[i]} - {labels[j]}")
        return np.array(rows).reshape(len(rows), k), names, "tukey", True
    if method == "revpairwise":
        for i in range(1, k):
            for j in range(i):
                c = np.zeros(k)
                c[i], c[j] = 1.0, -1.0
                rows.append(c)
                names.append(f"{labels[i]} - {labels[j]}")
        return np.array(rows).reshape(len(rows), k), names, "tukey", True
    if method == "trt.vs.ctrl":
        control = _control_index(ref, raw, labels)
        for i in range(k):
            if i == control:
                continue
            c = np.zeros(k)
            c[i], c[control] = 1.0, -1.0
            rows.append(c)
            names.append(f"{labels[i]} - {labels[control]}")
        return np.array(rows).reshape(len(rows), k), names, "dunnettx", False
    if method == "consec":
        for i in range(1, k):
            c = np.zeros(k)
            c[i], c[i - 1] = 1.0, -1.0
            rows.append(c)
            names.append(f"{labels[i]} - {labels[i - 1]}")
        return np.array(rows).reshape(len(rows), k), names, "mvt", False
    if method in ("eff", "del.eff"):
        for i in range(k):
            c = np.full(k, -1.0 / k)
            c[i] += 1.0
            # del.eff: each level against the mean of the others.
            rows.append(c / c[i] if method == "del.eff" else c)
            names.append(f"{labels[i]} effect")
        return np.array(rows).reshape(len(rows), k), names, "fdr", False
    if method == "poly":
        coef = poly_contrasts(k)
        names = [
            POLY_NAMES[d] if d < len(POLY_NAMES) else f"degree {d + 1}" for d in range(len(coef))
        ]
        return coef, names, "none", False
    raise ValueError(
        f"method must be one of {', '.join(map(repr, METHODS))} or a dict of weight vectors, "
        f"got {method!r}"
    )


def poly_contrasts(k: int) -> FloatArray:
    """emmeans' poly contrasts of k equally spaced levels: the orthogonal polynomials of
    degree 1 to min(POLY_MAX_DEGREE, k - 1) on 1..k (R's poly()), each scaled to small
    integers as emmeans scales them (by its least positive entry, then by its largest
    distance from an integer until that is at most 0.05), one row per degree."""
    x = np.arange(1.0, k + 1.0)
    degree = min(POLY_MAX_DEGREE, k - 1)
    basis = [np.ones(k)]
    rows = []
    for d in range(1, degree + 1):
        # x^d less its projection on the lower degrees: R's poly() column, up to scale (its
        # leading coefficient positive).
        column = x**d
        for b in basis:
            column = column - (column @ b) / (b @ b) * b
        basis.append(column)
        unit = column / np.sqrt(column @ column)  # R's poly() column itself
        con = unit / np.min(unit[unit > 0.01])
        off = np.max(np.abs(con - np.round(con)))
        while off > 0.05:
            con = con / off
            off = np.max(np.abs(con - np.round(con)))
        rows.append(np.round(con))
    return np.array(rows).reshape(degree, k)


def by_groups(grid: pd.DataFrame, by: list[str]) -> list[list[int]]:
    """The rows of each by group of ``grid``, groups in order of first appearance (emmeans'
    by.rows; all rows one group without ``by``)."""
    if not by:
        return [list(range(len(grid)))]
    keys = [tuple(label_key(v) for v in row) for row in grid[by].itertuples(False)]
    order: dict[tuple[str, ...], list[int]] = {}
    for i, key in enumerate(keys):
        order.setdefault(key, []).append(i)
    return list(order.values())


CONSTANT_TOL = 1e-12
"""A contrast whose linear function of the coefficients is below CONSTANT_TOL times the
means' largest coefficient is constant: no coefficient enters it (contrast())."""


def contrast_rank(functions: FloatArray) -> int:
    """The rank of contrasts' linear functions of the coefficients (rows), by the tolerance
    of emmeans' qr() rank (numerical_rank; its scheffe.rank); at least 1."""
    if functions.size == 0 or not np.all(np.isfinite(functions)):
        return 1
    return max(
        numerical_rank(np.asarray(np.linalg.svd(functions, compute_uv=False), np.float64)), 1
    )


@dataclass
class _ContrastRows:
    """One family's contrasts before adjustment (contrast()): per by group its labels, by
    values, estimates, standard errors, linear functions of the coefficients and their
    covariance, (number of contrasts, pairwise, number of means) and rank."""

    labels: list[list[str]] = field(default_factory=list)
    by: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    by_values: list[dict[str, Any]] = field(default_factory=list)
    estimates: list[FloatArray] = field(default_factory=list)
    std_errors: list[FloatArray] = field(default_factory=list)
    functions: list[FloatArray] = field(default_factory=list)
    covariances: list[FloatArray] = field(default_factory=list)
    blocks: list[tuple[int, bool, int]] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    interaction_labels: list[dict[str, list[str]]] = field(default_factory=list)
    default_adjust: str | None = None
    true_contrast: bool = True
    missing: int = 0
    empty: int = 0
    combined: bool = False


def _contrast_rows(
    emm: EMMeans,
    method: str | Mapping[str, Sequence[float]],
    by_list: list[str],
    ref: Any,
    interaction: Any,
    offsets: FloatArray | None = None,
    scales: FloatArray | None = None,
) -> _ContrastRows:
    """The contrasts of ``method`` (or interaction contrasts) within each by group of
    ``by_list``, unadjusted (contrast()); each group's coefficients times ``scales`` and its
    estimates plus ``offsets`` (contrast()'s scale and offset: one number or one per
    contrast)."""
    columns = list(emm.grid.columns)
    unknown = [b for b in by_list if b not in columns]
    if unknown:
        raise ValueError(
            f"by names {', '.join(map(repr, unknown))}, not a column of the means "
            f"({', '.join(columns)})"
        )
    notes = []
    for b in list(by_list):
        # emmeans' .nested_contrast: a nested by variable brings its nesters into by (b0 of
        # a0 and b0 of a1 are different levels: no contrast of A within B).
        added = [u for u in emm.nesting.get(b, ()) if u not in by_list]
        if added:
            by_list = by_list + added
            notes.append(f"{', '.join(added)} added to by: {b} is nested in it")
    inner = [c for c in columns if c not in by_list]
    if not inner:
        raise ValueError(
            "by leaves no levels to contrast"
            + (f" ({'; '.join(notes)}): take nested variables out of by" if notes else "")
        )
    methods = _interaction_methods(interaction, method, [c for c in inner if c != OFFSET_NAME])
    eta = emm.link_estimate
    out = _ContrastRows(by=by_list, notes=notes)
    # emmeans' labels leave out the offset's values (.offset., a nester of the means).
    named = [c for c in inner if c != OFFSET_NAME] or inner
    groups = by_groups(emm.grid, by_list)
    for rows in groups:
        labels, raw = _labels(emm.grid.iloc[rows].reset_index(drop=True), named)
        out.by_values.append({b: emm.grid.iloc[rows[0]][b] for b in by_list})
        if len(rows) == 1 and len(groups) > 1 and methods is None:
            # A by group with one mean (a nest with one level seen): no contrast, a row that
            # says so (emmeans' "(nothing)"), as long as other groups have some.
            out.functions.append(np.full((1, emm.linfct.shape[1]), np.nan))
            out.covariances.append(np.full((1, 1), np.nan))
            out.estimates.append(np.full(1, np.nan))
            out.std_errors.append(np.full(1, np.nan))
            out.labels.append(["(nothing)"])
            out.blocks.append((0, True, 1))
            out.ranks.append(1)
            continue
        if methods is None:
            coef, names, default_adjust, pairwise = _family(method, labels, raw, ref)
        else:
            coef, by_variable = _interaction_family(emm.grid.iloc[rows], methods, ref)
            names = [" ".join(parts) for parts in zip(*by_variable.values(), strict=True)]
            default_adjust, pairwise = "none", False
            out.interaction_labels.append(by_variable)
        if out.default_adjust is None:
            out.default_adjust = default_adjust
        out.true_contrast = out.true_contrast and bool(
            np.all(np.abs(coef.sum(axis=1)) / (1e-6 + np.abs(coef).max(axis=1)) < 1e-6)
        )
        if scales is not None:
            # emmeans' tcmat * scale: each contrast's coefficients (after its true.con test).
            coef = coef * _per_contrast(scales, "scale", len(names))[:, None]
        functions = coef @ emm.linfct[rows]
        # A contrast that no coefficient enters (an interaction contrast of an additive
        # model) is exactly its offsets' contrast, with no standard error (z and p NaN).
        scale = max(float(np.abs(emm.linfct[rows]).max(initial=0.0)), 1.0)
        constant = np.abs(functions).max(axis=1, initial=0.0) <= CONSTANT_TOL * scale
        functions = np.where(constant[:, None], 0.0, functions)
        out.ranks.append(contrast_rank(functions))
        est = np.where(moving_rows(functions, emm.limit), np.nan, coef @ eta[rows])
        est = np.where(constant, coef @ np.asarray(emm.offset, np.float64)[rows], est)
        # From the coefficients' covariance: a contrast of means that do not use a
        # coefficient with no variance has one (C L V L' C' would be NaN through 0 * NaN).
        var = transform_covariance(functions, emm.vcov, emm.limit)
        se = np.sqrt(np.clip(np.diag(var), 0.0, None))
        if emm.linfct_full is not None and emm.null_basis is not None:
            # A contrast of a rank-deficient fit's means is estimable or not by itself (a
            # difference of two non-estimable means can be estimable).
            estimable = estimable_rows(coef @ emm.linfct_full[rows], emm.null_basis)
            est, se = np.where(estimable, est, np.nan), np.where(estimable, se, np.nan)
            out.missing += int((~estimable).sum())
        if emm.empty is not None:
            # A contrast that uses a mean without data is NaN; the others stand as they are.
            uses = np.any(coef[:, emm.empty[rows]] != 0.0, axis=1)
            est, se = np.where(uses, np.nan, est), np.where(uses, np.nan, se)
            out.empty += int(uses.sum())
        if offsets is not None:
            # emmeans' .offset. of the contrasts: part of the estimate that z tests against 0.
            est = est + _per_contrast(offsets, "offset", len(names))
        out.functions.append(functions)
        out.covariances.append(var)
        out.estimates.append(est)
        out.std_errors.append(se)
        out.labels.append(names)
        out.blocks.append((len(names), pairwise, len(rows)))
    if max(b[0] for b in out.blocks) == 0:
        raise ValueError(
            "method gives no contrasts: each by group has a single level "
            f"({', '.join(inner)} takes one value)"
        )
    return out


def _contrast_numbers(value: Any, name: str, nonzero: bool) -> FloatArray | None:
    """contrast()'s ``offset`` or ``scale`` as an array (None for None): one finite number or
    a non-empty list of them (``nonzero``: none 0); ValueError naming ``name`` otherwise."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        listed = list(value) if value.ndim == 1 else [value[()]] if value.ndim == 0 else [None]
    else:
        listed = (
            list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        )
    numbers = [real(v) for v in listed]
    if not listed or any(x is None or (nonzero and x == 0.0) for x in numbers):
        kind = "non-zero finite numbers" if nonzero else "finite numbers"
        raise ValueError(
            f"{name} must be a number or a list of {kind} (one per contrast), got {value!r}"
        )
    return np.array(numbers, dtype=np.float64)


def _per_contrast(values: FloatArray, name: str, n: int) -> FloatArray:
    """``values`` (one number, or one per contrast) for a by group's ``n`` contrasts."""
    if len(values) not in (1, n):
        raise ValueError(
            f"{name} gives {len(values)} numbers for {n} contrasts: give one number, or one "
            "per contrast of each by group"
        )
    return np.broadcast_to(values, (n,))


def _one_family(emm: EMMeans, parts: list[_ContrastRows]) -> _ContrastRows:
    """The contrasts of several simple-effects parts as one family (emmeans' combine = TRUE,
    its rbind): their rows in order, the covariance of all of them, its rank, adjusted by
    Bonferroni by default."""
    functions = np.vstack([f for p in parts for f in p.functions])
    finite = np.isfinite(functions).all(axis=1)
    covariance = np.full((len(functions), len(functions)), np.nan)
    covariance[np.ix_(finite, finite)] = transform_covariance(
        functions[finite], emm.vcov, emm.limit
    )
    labels = [name for p in parts for group in p.labels for name in group]
    return _ContrastRows(
        labels=[labels],
        by=list(dict.fromkeys(b for p in parts for b in p.by)),
        notes=list(dict.fromkeys(n for p in parts for n in p.notes)),
        combined=True,
        by_values=[
            values
            for p in parts
            for values, group in zip(p.by_values, p.labels, strict=True)
            for _ in group
        ],
        estimates=[np.concatenate([e for p in parts for e in p.estimates])],
        std_errors=[np.concatenate([s for p in parts for s in p.std_errors])],
        functions=[functions],
        covariances=[covariance],
        # "(nothing)" rows (a nest with one mean: no function) are no test of the family.
        blocks=[(int(finite.sum()), False, len(labels))],
        ranks=[contrast_rank(functions[finite])],
        default_adjust="bonferroni",
        true_contrast=all(p.true_contrast for p in parts),
        missing=sum(p.missing for p in parts),
        empty=sum(p.empty for p in parts),
    )


SIMPLE_TITLE = "simple contrasts for {}"
"""The key of each part of contrast(simple=...) without combine (emmeans' list names)."""


def _simple_parts(simple: Any, grid: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """contrast()'s ``simple`` as (title, variables contrasted) per part: one part for a
    name or a list of names; one per variable for "each"; one per entry for a list of lists."""
    variables = [c for c in grid.columns if c != OFFSET_NAME]

    def names(value: Any) -> list[str]:
        listed = [value] if isinstance(value, str) else list(value) if is_list(value) else []
        unknown = [v for v in listed if v not in variables]
        if not listed or unknown or not all(isinstance(v, str) for v in listed):
            raise ValueError(
                "simple must name variables of the means "
                f'({", ".join(map(repr, variables))}), "each" or a list of such lists, got '
                f"{simple!r}"
            )
        return listed

    def is_list(value: Any) -> bool:
        return isinstance(value, Sequence) and not isinstance(value, str)

    if simple == "each" and "each" not in variables:
        parts: list[Any] = [[v] for v in variables]
    elif not is_list(simple) or all(isinstance(v, str) for v in simple):
        return [("", names(simple))]
    else:
        parts = list(simple)
    return [(SIMPLE_TITLE.format("*".join(names(p))), names(p)) for p in parts]


def contrast(
    emm: EMMeans,
    method: str | Mapping[str, Sequence[float]] = "pairwise",
    adjust: str | None = None,
    by: Any = _SAME,
    type: str | None = None,  # noqa: A002 - emmeans' name
    conf_level: float | None = None,
    ref: Any = None,
    *,
    level: float | None = None,
    interaction: str | Sequence[str] | bool | None = None,
    simple: str | Sequence[Any] | None = None,
    combine: bool = False,
    offset: float | Sequence[float] | None = None,
    scale: float | Sequence[float] | None = None,
) -> Any:
    """Contrasts of marginal means within each ``by`` group (default: the means' own), as
    emmeans' contrast(emm, method, adjust) computes them (module docstring).

    method: "pairwise" (earlier minus later level; default adjustment "tukey"),
    "revpairwise", "trt.vs.ctrl" (each level minus the control ``ref``, the first level by
    default, else the level labelled ``ref`` or at position ``ref``; default adjustment
    "dunnettx"), "consec" (each level minus the one before; "mvt"), "eff" (each level minus
    the mean of all; "fdr"), "del.eff" (each level minus the mean of the others; "fdr"),
    "poly" (orthogonal polynomial contrasts of equally spaced levels, in emmeans' integer
    scaling: linear, quadratic, ..; "none") or a dict {name: weights} (default "none").
    adjust: "tukey", "dunnettx", "mvt", "scheffe" (by the rank of each by group's
    contrasts), "sidak", "holm", "hochberg", "hommel", "fdr" (= "BH"), "BY", "bonferroni" or
    "none" (Tukey on a family that is not pairwise becomes Sidak, as in emmeans; a single
    contrast is not adjusted, but for Scheffe; glmm_binomial.results.multiplicity).
    type: "link" or "response" (default: the means' type); on the response scale of a logit
    model true contrasts are odds ratios (column ``odds_ratio``, with z and p from the log
    scale), else differences (column ``estimate``). Columns: contrast, the by columns, the
    estimate, std_error, z, p_value, ci_lower, ci_upper (simultaneous intervals with the same
    adjustment; Bonferroni for the p.adjust methods) at conf_level (default: the means';
    level: its deprecated name); ``attrs`` holds the adjustment and notes. Each by group is a
    family of its own; by groups may hold different numbers of means (nesting), and one with a
    single mean gives a row "(nothing)" with NaN, as emmeans does. (emmeans 1.8.4 adjusts the
    contrasts of nested means as one family across their by groups: its rbind of the groups
    sets Tukey's family to the number of all the contrasts. Here each group is its own, as
    emmeans does without nesting.) A by variable nested in others (EMMeans.nesting) brings
    them into by, with a note, as emmeans' .nested_contrast; where that leaves nothing to
    contrast the call is refused.

    interaction: emmeans' interaction contrasts (contrast(emm, interaction = ...)): a method
    per variable of the means other than the by variables (a name, recycled over them, or
    one each; True: ``method``), and the contrasts of their product (the Kronecker product of
    each variable's family, the first variable's contrasts varying fastest), with a column
    "<variable>_<method>" of each variable's contrast labels (its levels as they are, without
    emmeans' variable-name prefix) in place of "contrast"; default adjustment "none" (Tukey
    becomes Sidak: the family is not pairwise). The means of each by group must be every
    combination of the variables' levels (not nested), each variable with two levels at least.

    simple: simple effects, as emmeans' contrast(simple = ...): a variable of the means, or a
    list of them, is contrasted within each combination of all the other variables (``by``
    set to them; not given with ``by``). "each": each variable in turn, and a list of lists
    (``[["A"], ["B", "C"]]``) each entry in turn: a dict {"simple contrasts for A": table,
    ..} of contrast tables, each part adjusted as its own (its by groups each a family).
    combine: with "each" or a list of lists, one table instead (emmeans' combine = TRUE, its
    rbind): the parts' rows in order, one column per by variable of any part ("." where a
    part does not have it) before "contrast", and all the rows one family, adjusted by
    ``adjust`` (default "bonferroni"; Tukey becomes Sidak; Scheffe by the rank of all the
    rows, mvt by their joint covariance).

    scale: a number, or one per contrast of each by group, multiplying the contrasts'
    coefficients (emmeans' scale: 0.5 for the mean of two differences); offset: likewise,
    added to the estimates on the link scale (emmeans' offset: z then tests estimate + offset
    against 0, and odds ratios are exp(estimate + offset)). Both apply within every by group
    and every part of ``simple``, nested means included (emmeans 1.8.4 ignores scale there),
    and not with ``interaction`` (refused; emmeans ignores both there)."""
    if level is not None:
        conf_level = renamed_level(0.95 if conf_level is None else conf_level, level)
    if not isinstance(emm, EMMeans):
        raise ValueError(f"emm must be an EMMeans (from emmeans or emtrends), got {emm!r}")
    if adjust is not None and adjust not in ADJUSTMENTS:
        raise ValueError(
            f"adjust must be one of {', '.join(map(repr, ADJUSTMENTS))}, got {adjust!r}"
        )
    out_type = emm.type if type is None else type
    if out_type not in TYPES:
        raise ValueError(f"type must be 'link' or 'response', got {type!r}")
    level = emm.level if conf_level is None else fraction(conf_level, "conf_level")
    if not isinstance(combine, bool):
        raise ValueError(f"combine must be True or False, got {combine!r}")
    offsets = _contrast_numbers(offset, "offset", nonzero=False)
    scales = _contrast_numbers(scale, "scale", nonzero=True)
    if (offsets is not None or scales is not None) and not (
        interaction is None or interaction is False
    ):
        raise ValueError(
            "offset= and scale= do not go with interaction= (emmeans ignores them there): "
            "give them to contrasts of one variable"
        )
    if simple is None:
        if combine:
            raise ValueError('combine joins the parts of simple= ("each" or a list of lists)')
        by_list = list(emm.by) if by is _SAME else _by_names(by)
        rows = _contrast_rows(emm, method, by_list, ref, interaction, offsets, scales)
        return _contrast_table(emm, rows, adjust, out_type, level)
    if by is not _SAME:
        raise ValueError("give simple= or by=, not both: simple= sets by to the other variables")
    if interaction is not None and interaction is not False:
        raise ValueError("simple= and interaction= do not go together: give one of them")
    parts = _simple_parts(simple, emm.grid)

    def by_of(contrasted: list[str]) -> list[str]:
        return [c for c in emm.grid.columns if c not in contrasted]

    found = [
        (title, _contrast_rows(emm, method, by_of(contrasted), ref, None, offsets, scales))
        for title, contrasted in parts
    ]
    if len(parts) == 1 and not parts[0][0]:
        return _contrast_table(emm, found[0][1], adjust, out_type, level)
    if not combine:
        return {title: _contrast_table(emm, rows, adjust, out_type, level) for title, rows in found}
    return _contrast_table(
        emm, _one_family(emm, [rows for _, rows in found]), adjust, out_type, level
    )


def _contrast_table(
    emm: EMMeans, rows: _ContrastRows, adjust: str | None, out_type: str, level: float
) -> pd.DataFrame:
    """contrast()'s table of ``rows``: the adjustment of each by group's family (one family
    where the rows are ``combined``), intervals, the response scale and the notes."""
    link = emm.link
    combined, by_list = rows.combined, rows.by
    notes: list[str] = list(rows.notes)
    blocks, ranks, covariances = rows.blocks, rows.ranks, rows.covariances
    estimates, std_errors = rows.estimates, rows.std_errors
    adjust_used = adjust if adjust is not None else rows.default_adjust or "none"
    n_contrasts = max(b[0] for b in blocks)
    pairwise = all(b[1] for b in blocks)
    if adjust_used == "tukey" and not pairwise:
        adjust_used = "sidak"
        notes.append(
            "tukey applies to one set of pairwise comparisons only: sidak used instead"
            if combined
            else "tukey applies to pairwise comparisons only: sidak used instead"
        )
    if adjust_used == "mvt" and n_contrasts > MVT_MAX_TESTS:
        adjust_used = "sidak"
        notes.append(
            f"mvt's integral over {n_contrasts} tests takes minutes: sidak used instead "
            "(conservative whatever the correlations)"
        )
    elif adjust_used == "mvt":
        coarse = [
            mvt_abseps(correlation_of(c))
            for c, b in zip(covariances, blocks, strict=True)
            if b[0] > 1
        ]
        if coarse and max(coarse) > MVT_ABSEPS:
            notes.append(
                f"mvt integrated to {max(coarse):g} (mvtnorm's default accuracy, emmeans'): "
                f"more than {MVT_FINE_TESTS} tests, or their correlation singular"
            )
    if n_contrasts <= 1 and adjust_used not in ("none", "scheffe"):
        adjust_used = "none"  # as emmeans: one test is not adjusted, but for scheffe's rank

    est_all = np.concatenate(estimates)
    se_all = np.concatenate(std_errors)
    with np.errstate(divide="ignore", invalid="ignore"):
        # No standard error (a constant contrast): no test statistic either.
        z_all = np.where(se_all > 0.0, est_all / se_all, np.nan)
    # Each by group is its own family (its number of contrasts; of means for tukey).
    starts = np.cumsum([0] + [len(e) for e in estimates])
    p_all = np.concatenate(
        [
            adjust_p_values(z_all[a:b], adjust_used, size, covariance, rank, n)
            for a, b, (n, _, size), covariance, rank in zip(
                starts[:-1], starts[1:], blocks, covariances, ranks, strict=True
            )
        ]
    )
    # Each by group's own multiplier (mvt: from its contrasts' correlations, as emmeans).
    crit: Any = np.concatenate(
        [
            np.full(
                len(e),
                critical_value(level, adjust_used, n, size, covariance, rank) if n > 0 else np.nan,
            )
            for e, (n, _, size), covariance, rank in zip(
                estimates, blocks, covariances, ranks, strict=True
            )
        ]
    )
    low, high = est_all - crit * se_all, est_all + crit * se_all
    ratio = (
        out_type == "response" and link is not None and link.link == "logit" and rows.true_contrast
    )
    names_all = [n for group in rows.labels for n in group]
    if ratio:
        names_all = [n.replace(" - ", " / ") for n in names_all]
        estimate_column = "odds_ratio"
        shown = np.exp(est_all)
        shown_se = shown * se_all
        low, high = np.exp(low), np.exp(high)
        notes.append("tests are performed on the log odds ratio scale")
    else:
        estimate_column = "estimate"
        shown, shown_se = est_all, se_all
        if out_type == "response" and link is not None:
            notes.append(f"contrasts are on the {link.link} scale")
        elif link is not None:
            notes.append("on the log odds ratio (not the response) scale")
    if adjust_used != "none":
        families = sorted({b[2] for b in blocks if b[0] > 0})
        counts = sorted({b[0] for b in blocks if b[0] > 0})
        used_ranks = sorted({r for r, b in zip(ranks, blocks, strict=True) if b[0] > 0})
        size_text = (
            f"for comparing a family of {_span(families)} estimates"
            if adjust_used == "tukey"
            else f"with rank {_span(used_ranks)}"
            if adjust_used == "scheffe"
            else f"for {_span(counts)} tests"
        )
        notes.append(f"p-value adjustment: {adjust_used} method {size_text}")
        if adjust_used in BONFERRONI_INTERVALS and adjust_used != "bonferroni":
            notes.append(f"intervals: bonferroni critical value ({adjust_used} has none)")
    notes.extend(n for n in emm.notes if n.startswith("method vb"))
    if rows.missing:
        notes.append(
            f"{rows.missing} contrast(s) not estimable (NaN; emmeans' nonEst): the fit "
            "dropped aliased columns"
        )
    if rows.empty:
        notes.append(f"{rows.empty} contrast(s) NaN: they use a mean without data (weights)")
    table: dict[str, Any] = {}
    if combined:
        # emmeans' rbind: each by variable of any part, "." in the rows of a part without it.
        per_row = rows.by_values
        for b in by_list:
            table[b] = [values.get(b, ".") for values in per_row]
    table["contrast"] = names_all
    if rows.interaction_labels:
        table = {
            column: [
                label.replace(" - ", " / ") if ratio else label
                for group in rows.interaction_labels
                for label in group[column]
            ]
            for column in rows.interaction_labels[0]
        }
    if not combined:
        for b in by_list:
            table[b] = [
                values[b]
                for values, names in zip(rows.by_values, rows.labels, strict=True)
                for _ in range(len(names))
            ]
    table[estimate_column] = shown
    table["std_error"] = shown_se
    table["z"] = z_all
    table["p_value"] = p_all
    table["ci_lower"] = low
    table["ci_upper"] = high
    out = pd.DataFrame(table)
    out.attrs.update({"adjust": adjust_used, "type": out_type, "level": level, "notes": notes})
    return out


def _interaction_methods(
    interaction: Any, method: Any, variables: list[str]
) -> dict[str, str] | None:
    """contrast()'s ``interaction`` as variable -> method (None: no interaction contrasts);
    one name is recycled over the variables, as emmeans' rep(interaction, k)."""
    if interaction is None or interaction is False:
        return None
    if not (isinstance(method, str) and method in METHODS):
        raise ValueError(
            "method: interaction contrasts take each variable's method by name (interaction=, "
            f"or interaction=True with method one of {', '.join(map(repr, METHODS))}), got "
            f"{method!r}"
        )
    if interaction is True:
        interaction = method
    names = [interaction] if isinstance(interaction, str) else interaction
    if (
        not isinstance(names, Sequence)
        or not names
        or not all(isinstance(n, str) and n in METHODS for n in names)
    ):
        raise ValueError(
            "interaction must be True, a method name or a list of them (one per variable: "
            f"{', '.join(variables)}; methods {', '.join(map(repr, METHODS))}), got {interaction!r}"
        )
    if len(names) > len(variables):
        raise ValueError(
            f"interaction gives {len(names)} methods for {len(variables)} variable(s) "
            f"({', '.join(variables)})"
        )
    return {v: names[i % len(names)] for i, v in enumerate(variables)}


def _interaction_family(
    frame: pd.DataFrame, methods: dict[str, str], ref: Any
) -> tuple[FloatArray, dict[str, list[str]]]:
    """Interaction contrasts of one by group's means (``frame``: their rows of the grid, every
    combination of the variables' levels, the first varying fastest): the coefficients (the
    Kronecker product of each variable's family, the first variable's contrasts fastest) and
    each variable's contrast label per row, in columns "<variable>_<method>"."""
    variables = list(methods)
    levels: list[list[Any]] = []
    codes = []
    for v in variables:
        keys = [label_key(x) for x in frame[v]]
        seen = list(dict.fromkeys(keys))
        levels.append([frame[v].iloc[keys.index(k)] for k in seen])
        codes.append([seen.index(k) for k in keys])
    sizes = [len(values) for values in levels]
    index = _product_index(sizes)
    if len(frame) != len(index) or not np.array_equal(np.array(codes).T, index):
        raise ValueError(
            "interaction: the means must be every combination of the levels of "
            f"{', '.join(variables)} (the first varying fastest), as emmeans' grid of them: "
            "these are not (nested or left out)"
        )
    coef: FloatArray = np.ones((1, 1))
    names_of: dict[str, list[str]] = {}
    counts = []
    for v, values in zip(variables, levels, strict=True):
        own = pd.DataFrame({v: values})
        labels, raw = _labels(own, [v], prefix=False)
        family, names, _, _ = _family(methods[v], labels, raw, ref)
        if len(names) == 0:
            raise ValueError(f"interaction: '{v}' takes one value here: it has no contrast")
        # kron(later, earlier): the earlier variables' contrasts vary fastest.
        coef = np.asarray(np.kron(family, coef), dtype=np.float64)
        names_of[f"{v}_{methods[v]}"] = names
        counts.append(len(names))
    rows = _product_index(counts)
    labels_of = {
        column: [names[i] for i in rows[:, j]] for j, (column, names) in enumerate(names_of.items())
    }
    return coef, labels_of


def _span(sizes: list[int]) -> str:
    """ "4", or "2 to 4" where the by groups' families differ."""
    return str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"


def pairs(
    emm: EMMeans,
    adjust: str | None = None,
    reverse: bool = False,
    by: Any = _SAME,
    type: str | None = None,  # noqa: A002 - emmeans' name
    conf_level: float | None = None,
    *,
    level: float | None = None,
    simple: str | Sequence[Any] | None = None,
    combine: bool = False,
    offset: float | Sequence[float] | None = None,
    scale: float | Sequence[float] | None = None,
) -> Any:
    """All pairwise comparisons (earlier minus later level; later minus earlier with
    ``reverse``) within each by group, Tukey-adjusted by default (adjust None: the family's
    default, as contrast()): emmeans' pairs(); intervals at conf_level (default: the means';
    level: its deprecated name); simple and combine as contrast()'s (simple effects; with
    combine one family, Bonferroni unless ``adjust`` is given), offset and scale too."""
    if level is not None:
        conf_level = renamed_level(0.95 if conf_level is None else conf_level, level)
    return contrast(
        emm,
        "revpairwise" if reverse else "pairwise",
        adjust=adjust,
        by=by,
        type=type,
        conf_level=conf_level,
        simple=simple,
        combine=combine,
        offset=offset,
        scale=scale,
    )


# --------------------------------------------------------------------------------------------
# Joint tests of the model terms
# --------------------------------------------------------------------------------------------


def joint_tests(
    result: GLMMResult,
    by: str | Sequence[str] | None = None,
    at: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """emmeans' joint_tests(result, by): for each combination of the grid's variables that
    some model term contains (first the variables alone, then pairs, ...), the joint Wald test
    that the marginal means of that combination (averaged with equal weights over the other
    variables, per `by` group) have no interaction contrasts ("consec"): a main effect, a
    two-way interaction, ... in the sense of Type III tests with sum-to-zero coding, whatever
    the fit's contrasts. A numeric variable enters at its mean -+ 1 (emmeans' cov.reduce =
    meanint: its test is that of the average slope), unless it has at most two values or `at`
    gives its values. Columns "model term", the `by` variables, df1 (the rank of the
    contrasts), F.ratio (chi-square / df1) and p.value (asymptotic: the chi-square on df1;
    emmeans' df2 = Inf, a column left out here, an infinite number being no estimate); a
    "(confounded)" row where the grid's contrasts hold more than the terms' (df1 > 0); a term
    with no contrast on the grid (df1 = 0) is left out, as emmeans does. A
    variable nested in others (by the model's terms, age + age:urban: urban within age, or by
    the data's cells: grid_nesting) is tested within its nesters only, its means those of
    emmeans (marginal), as emmeans does; a nest whose shown means do not form the product of
    several variables' levels is not tested.

    A fit that dropped aliased columns: a term whose contrasts are not all estimable is tested
    on the estimable part of their span (estimability's estble.subspace: the combinations of
    the contrasts orthogonal to the full design's null space), with a smaller df1, and
    ``attrs["notes"]`` names it (emmeans' note "e"); a term with none left is left out."""
    design = _check_result(result, "joint_tests")
    base = reference_grid(result, at, 0.0, "joint_tests")
    given = {} if at is None else dict(at)
    for v, values in base.levels.items():
        if v not in base.factor_like and v not in given:
            given[v] = (float(values[0]) - 1.0, float(values[0]) + 1.0)
    grid = reference_grid(result, given, 0.0, "joint_tests")
    by_list = _by_names(by)
    _check_names("by", by_list, grid)
    names = [v for v in grid.levels if v not in by_list]
    if not names:
        raise ValueError("joint_tests: there are no variables to test (all are in by)")
    terms = _fixed_terms(design)
    beta = np.asarray(result.params, dtype=np.float64)
    vcov = np.asarray(result.vcov, dtype=np.float64)
    # A separated fit: the terms whose contrasts stay finite are tested by the limit's
    # covariance, those that move along the diverging path are not (NaN).
    limit = limit_covariance(result)
    by_frame, _ = _expand({v: grid.levels[v] for v in by_list}, grid.factors)
    n_by = len(by_frame)
    rows: list[dict[str, Any]] = []
    reduced: list[str] = []
    tested: list[list[FloatArray]] = [[] for _ in range(n_by)]
    # Over every column for a rank-deficient fit (estimability), the fit's columns otherwise.
    every = grid.linfct if grid.full is None else grid.full
    kept = None if grid.full is None else list(design.kept_columns)
    counts = _counts_or_none(result, grid)
    found = grid_nesting(result, grid, counts)
    nesting = {v: set(within) for v, within in found.items()}
    # emmeans' table of terms gains one column per nested variable, with its nesters.
    term_sets = terms + [{v} | within for v, within in nesting.items()]
    for combination in _combinations(names):
        if not any(set(combination) <= t for t in term_sets):
            continue
        nesters = set().union(*(nesting.get(v, set()) for v in combination))
        if not nesters <= set(combination):
            continue  # a nested variable is tested within its nesters only
        means = marginal(
            result,
            grid,
            list(combination),
            by_list,
            "equal",
            every,
            None,
            grid.offset,
            (counts, found),
        )
        term = ":".join(combination)
        for j, key in enumerate(_group_keys(by_frame, by_list)):
            in_group = _group_keys(means.frame, by_list) == key if by_list else None
            functions = _interaction_contrasts(
                grid, means, [v for v in means.specs if v not in nesters], nesters, in_group
            )
            functions, lost = _estimable_span(functions, grid.null_basis)
            if lost:
                reduced.append(term)
            functions = _fit_columns(functions, kept)
            tested[j].append(functions)
            df1, chisq = joint_chisq(functions, beta, vcov, limit)
            rows.append(_joint_row(term, by_frame, j, df1, chisq))
    # Contrasts of the grid's cells not among the terms' (emmeans' showconf).
    _, cells, _, _ = _average(grid, names + by_list, every, grid.offset)
    size = cells.shape[0] // n_by
    for j in range(n_by):
        block = cells[j * size : (j + 1) * size]
        consecutive = _estimable_span(np.diff(block, axis=0), grid.null_basis)[0]
        consecutive = _fit_columns(consecutive, kept)
        every_df, every_chisq = joint_chisq(consecutive, beta, vcov, limit)
        terms_df, terms_chisq = (
            joint_chisq(np.vstack(tested[j]), beta, vcov, limit) if tested[j] else (0, 0.0)
        )
        if every_df > terms_df:
            df1 = every_df - terms_df
            rows.append(
                _joint_row("(confounded)", by_frame, j, df1, max(every_chisq - terms_chisq, 0.0))
            )
    table = pd.DataFrame(rows, columns=["model term", *by_list, "df1", "F.ratio", "p.value"])
    # A term with no contrast on the grid (a variable held at one value by `at`, or whose
    # mean -+ 1 gives the model the same columns) has nothing to test: emmeans leaves it out.
    table = table[table["df1"] > 0]
    # emmeans' order: the terms by their number of variables (stable), then the by groups.
    order = table["model term"].map(lambda t: 999 if t == "(confounded)" else t.count(":") + 1)
    out = table.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)
    shown = [t for t in dict.fromkeys(reduced) if t in set(out["model term"])]
    if shown:
        out.attrs["notes"] = [
            f"df1 reduced due to non-estimability (emmeans' note e): {', '.join(shown)}"
        ]
    return out


ESTIMABLE_ZAP = 1e-8
"""|L N| entries at or below it count as 0 in _estimable_span (estble.subspace's tol)."""


def _estimable_span(
    functions: FloatArray, null_basis: FloatArray | None
) -> tuple[FloatArray, bool]:
    """The estimable part of the span of ``functions`` (rows over every column of a
    rank-deficient fit's formula; ``null_basis`` the full design's null space), as
    estimability's estble.subspace: B L with the rows of B spanning {v : v' L N = 0}; and
    whether that lost anything. Unchanged when every row is estimable or the fit is of full
    rank (null_basis None)."""
    if null_basis is None or functions.shape[0] == 0:
        return functions, False
    if estimable_rows(functions, null_basis).all():
        return functions, False
    projected = functions @ null_basis
    projected[np.abs(projected) <= ESTIMABLE_ZAP] = 0.0
    u, singular, _ = np.linalg.svd(projected, full_matrices=True)
    rank = numerical_rank(singular)
    combinations = u[:, rank:].T  # left null space of L N
    return combinations @ functions, True


def _fit_columns(functions: FloatArray, kept: list[int] | None) -> FloatArray:
    """Functions over every column of a rank-deficient fit's formula restricted to the fit's
    ``kept`` columns (None: already the fit's): on estimable functions the dropped
    coefficients (0 in the fit) do not matter."""
    return functions if kept is None else functions[:, kept]


def _term_nesting(names: list[str], terms: list[set[str]]) -> dict[str, list[str]]:
    """emmeans' nesting read from the model's terms (the second part of .find_nests, before
    closure_of_nesting): a variable of the grid with no term of its own (age + age:urban:
    urban) is nested in the variables that its terms code without contrasts (R's factors
    attribute 2: the term without that variable is not in the model); in ``names`` order."""
    present = [frozenset(t) for t in terms]

    def coded(term: frozenset[str], v: str) -> int:
        # A one-variable term's margin is the intercept, taken as present (R's coding 1).
        margin = term - {v}
        return 1 if (not margin or margin in present) else 2

    nesting: dict[str, list[str]] = {}
    for v in names:
        if frozenset({v}) in present:
            continue
        columns = [t for t in present if v in t and coded(t, v) == 1]
        if not columns:
            columns = [t for t in present if v in t]
        found = [
            frozenset(u for u in t if u != v and u in names and coded(t, u) == 2) for t in columns
        ]
        found = [f for f in found if f and not any(other < f for other in found)]
        if found:
            union = set().union(*found)
            nesting[v] = [u for u in names if u in union]
    return nesting


def _data_nesting(
    names: list[str], index: NDArray[np.intp], counts: FloatArray
) -> dict[str, list[str]]:
    """emmeans' nesting read from the grid's cell counts (the first part of .find_nests):
    ``nm`` is nested in ``n`` when each level of nm is seen (count > 0) with at most one level
    of n, and with one at least once; a variable already found to nest nm is not asked
    again. ``index``: the grid rows' level indices of ``names`` (columns in that order)."""
    seen = counts > 0
    nesting: dict[str, list[str]] = {}
    for i, nm in enumerate(names):
        excluded = {other for other, within in nesting.items() if nm in within}
        nested = []
        for j, n in enumerate(names):
            if n == nm or n in excluded:
                continue
            pairs = np.unique(index[seen][:, [i, j]], axis=0)
            if pairs.size and int(np.bincount(pairs[:, 0]).max()) == 1:
                nested.append(n)
        if nested:
            nesting[nm] = nested
    return nesting


def closure_of_nesting(
    found: dict[str, list[str]], more: dict[str, list[str]]
) -> dict[str, list[str]]:
    """emmeans' nesting of the data (``found``) joined with that of the terms (``more``), then
    one pass of transitivity in order (the nesters' own nesters first); a variable that ends
    nested in itself (livch and age of livch:age alone, each "nested" in the other) is not
    nested at all."""
    nesting = {v: list(within) for v, within in found.items()}
    for v, within in more.items():
        nesting[v] = list(dict.fromkeys(nesting.get(v, []) + within))
    for v in list(nesting):
        inherited = [u for w in nesting[v] for u in nesting.get(w, [])]
        nesting[v] = list(dict.fromkeys(inherited + nesting[v]))
    return {v: within for v, within in nesting.items() if v not in within}


def _combinations(names: list[str]) -> list[tuple[str, ...]]:
    """emmeans' do.test order: depth first from each variable in turn ((a), (a, b), (a, b, c),
    (a, c), (b), ...)."""
    out: list[tuple[str, ...]] = []

    def extend(these: tuple[str, ...], start: int) -> None:
        for i in range(start, len(names)):
            combination = (*these, names[i])
            out.append(combination)
            extend(combination, i + 1)

    extend((), 0)
    return out


def _group_keys(frame: pd.DataFrame, columns: list[str]) -> NDArray[np.object_]:
    """Each row's values of ``columns`` as one text key (all rows one key without columns)."""
    keys = np.empty(len(frame), dtype=object)
    keys[:] = ["\x1f".join(label_key(v) for v in row) for row in frame[columns].itertuples(False)]
    return keys


def _interaction_contrasts(
    grid: ReferenceGrid,
    means: Marginal,
    variables: list[str],
    nesters: set[str],
    in_group: NDArray[np.bool_] | None,
) -> FloatArray:
    """emmeans' contrast(emm, interaction = "consec", by = nesters) of the means (rows
    ``in_group`` of one by group; all without by): within each combination of the nesters'
    levels, the interaction contrasts of ``variables`` (each level minus the one before, over
    the levels shown there, the first variable fastest), as rows of L."""
    rows = np.flatnonzero(np.ones(len(means.frame), dtype=bool) if in_group is None else in_group)
    frame = means.frame.iloc[rows]
    within = sorted(nesters, key=list(grid.levels).index)
    keys = _group_keys(frame, within)
    blocks = []
    for key in dict.fromkeys(keys):
        part = rows[keys == key]
        contrast_rows: FloatArray = np.ones((1, 1))
        index = []
        for v in variables:
            values = [label_key(x) for x in means.frame[v].iloc[part]]
            present = list(dict.fromkeys(values))
            index.append([present.index(x) for x in values])
            contrast_rows = np.asarray(
                np.kron(_consecutive(len(present)), contrast_rows), dtype=np.float64
            )
        # The shown means of a nest are the product of its variables' shown levels (first
        # fastest) unless the data leave cells out; such a nest is not tested (not seen in
        # emmeans' own designs here).
        size = contrast_rows.shape[1]
        if size != len(part):
            continue
        order, _ = _level_code(
            np.asarray(index, dtype=np.intp).T, [max(v_index) + 1 for v_index in index]
        )
        placed = np.zeros((size, means.linfct.shape[1]))
        placed[order] = means.linfct[part]
        blocks.append(contrast_rows @ placed)
    if not blocks:
        return np.zeros((0, means.linfct.shape[1]))
    return np.vstack(blocks)


def _consecutive(n: int) -> FloatArray:
    """emmeans' "consec" contrasts of n levels: each level minus the one before."""
    return np.eye(n)[1:] - np.eye(n)[:-1] if n > 1 else np.zeros((0, 1))


def _joint_row(term: str, by_frame: pd.DataFrame, j: int, df1: int, chisq: float) -> dict[str, Any]:
    row: dict[str, Any] = {"model term": term}
    row.update({v: by_frame[v].iloc[j] for v in by_frame.columns})
    statistic = chisq / df1 if df1 > 0 else float("nan")
    p_value = float(special.chdtrc(df1, chisq)) if df1 > 0 else float("nan")
    row.update({"df1": df1, "F.ratio": statistic, "p.value": p_value})
    return row
