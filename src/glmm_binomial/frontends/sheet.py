"""GLMM_BINOMIAL: the spreadsheet function (contract: shared/spec/GLMM_BINOMIAL.md).

    GLMM_BINOMIAL(y, x, groups, [x_random], [fit_intercept], [alpha], [method], [link], [prior])

A front end: it reads spreadsheet ranges (2D lists), builds ModelData directly (fixed effects
``intercept``, ``x1``, ``x2``, ...; a random intercept per group and, for each x_random column,
an independent random slope on the same groups), calls ``api.fit_estimates`` and renders the
9-column table. It never raises: every outcome is the table or one string starting with
``Invalid input: `` (the arguments) or ``Error fitting GLMM: `` (the fit).

Input conventions (decided here, documented for users), accepting what spreadsheets send:
- A range is a 2D list (rows of cells), a numpy array of dimension 0 or 2, a pandas DataFrame
  (a Series is a column), or another 2D sequence (rows of cells, such as the ``formulas``
  package's Ranges, whose ``.value`` is read). A scalar counts as a 1 x 1 range. A flat (1D)
  list, a cell that is itself a list, ragged rows and empty ranges are rejected with a message
  naming the argument.
- Blank cells are None, "" (or only spaces) and the ``formulas`` package's empty cell. Rows at
  the end that are blank in every range are ignored (a selection longer than the data); a blank
  cell inside the data is an error naming the argument, row and column.
- Cells of y, x and x_random must be finite numbers; text that reads as a number (``"1.5"``,
  a number stored as text) is that number, as the package's reader policy reads every column
  (model/frame.py); in y TRUE/FALSE (or its text) counts as 1/0. Elsewhere TRUE/FALSE is
  rejected, as are other text, blanks, NaN and infinities.
- groups are labels: numbers or non-blank text, compared as R's as.character compares them, as
  everywhere in the package (1, 1.0 and the text "1" are one group; 1 and 1.5 two; numbers to
  15 significant digits, Excel's precision). Booleans, blanks and non-finite numbers are
  rejected.
- fit_intercept, alpha and method accept a scalar or a 1 x 1 range; None, "" or an empty cell
  (an omitted argument) means the default, also for x_random. fit_intercept accepts TRUE/FALSE
  and 1/0. method and link are case-insensitive. link is "logit" (default), "probit", "cloglog"
  or "cauchit" for "laplace" and "agq"; the variational method fits the logit link only (another
  link gets a message); the table's odds_ratio column is blank for links other than the logit.
- A boolean in the x_random position is fit_intercept (example 3 of the contract); the later
  arguments then shift left where their types show it: a non-boolean in the fit_intercept
  position is alpha, text in the alpha position is method, and then the name of a link in the
  method position is link.
- Whole ranges are converted with numpy; cells are looked at one by one only to word an error.

prior (methods "laplace" and "agq"): "none" (the default), "blme" (bglmer's default, a Wishart
prior on each variance component, which keeps them off zero), or the API's prior text such as
"fixef = t(df = 7, scale = 6.25); cov = wishart" (glmm_binomial.model.priors). The fit is then
the posterior mode (a penalized fit) and rows after ``bic`` say so: the priors, the prior
deviance and the penalized objective. The Bayesian methods ignore it (their priors are fixed)
and a note row says so. A prior combines with every link (the penalty is added to the
Laplace or AGQ deviance whatever the link).

Separation: when the fixed-effects design separates y (a direction d with x_i'd >= 0 where
y = 1 and <= 0 where y = 0, not all zero; found by linear programming, over every row only when
a sample of the rows is separable, since a subset of separable data is separable), maximum
likelihood ("laplace", "agq") has no finite estimate for the coefficients that move along such
directions. Their cells are left blank and a warning row says why (the fit found them:
FitOutput.separation); under the Bayesian methods ("vb", "vb_meanfield", "mcmc"), or a prior
on the fixed effects (the prior argument), the prior keeps the estimates finite, and the
warning row says they are driven by the prior.
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.family import make_family
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.methods.mcmc_diagnostics import equal_tailed_interval
from glmm_binomial.methods.options import fit_options
from glmm_binomial.methods.registry import method_class, method_names
from glmm_binomial.model.data import LARGEST_VALUE, ModelData, RandomBlock
from glmm_binomial.model.priors import NO_PRIORS, Priors, parse_priors
from glmm_binomial.model.separation import (
    NO_SEPARATION,
    Separation,
    detect_separation,
    separation_possible,
)
from glmm_binomial.results.facts import (
    information_criteria,
    normal_quantile,
    variance_components,
    wald_statistics,
)

FloatArray = NDArray[np.float64]

__all__ = ["GLMM_BINOMIAL", "glmm_binomial"]

DEFAULT_METHOD = "vb"
#: The methods as the spreadsheet lists them: its default first, then the registry's order.
METHODS = (DEFAULT_METHOD, *(m for m in method_names() if m != DEFAULT_METHOD))
#: Quadrature points per random-effect dimension for method "agq": glmer's usual nAGQ = 25 for
#: a random intercept, fewer when x_random adds dimensions, so that the product rule over the
#: k = 1 + (x_random columns) dimensions of each group keeps at most AGQ_NODE_BUDGET nodes
#: (never fewer than AGQ_MIN_POINTS per dimension).
N_AGQ = 25
AGQ_NODE_BUDGET = 100
AGQ_MIN_POINTS = 2
#: Settings of method "mcmc" here: the sampler's defaults (4 chains x 1,000 draws after 1,000
#: warm-up sweeps) with a fixed seed, so that the same call gives the same table, bit for bit.
MCMC_SETTINGS: dict[str, Any] = {"draws": 1000, "warmup": 1000, "chains": 4, "seed": 20240521}
#: Relative tolerance of the column rank check of the fixed-effects design.
RANK_TOL = 1e-10
#: A maximum-likelihood random-effect SD above this (log-odds scale) means group probabilities
#: pinned at 0 or 1: the groups (nearly) separate y and the estimate may be diverging.
LARGE_SD = 10.0

FIXED_HEADER = (
    "fixed_effects",
    "parameter",
    "coefficient",
    "std_error",
    "z_statistic",
    "p_value",
    "ci_lower",
    "ci_upper",
    "odds_ratio",
)
RANDOM_HEADER = ("random_effects", "parameter", "variance", "std_dev")
WIDTH = len(FIXED_HEADER)

#: The rows that tell "vb" and "vb_meanfield" users what their coefficient, std_error, z, p
#: and interval are (contract).
VB_NOTE = (
    "coefficient, std_error, ci_lower and ci_upper are posterior means, posterior SDs and "
    "credible intervals (posterior mean -+ z SD) under the stated priors (fixed effects "
    "N(0, 2^2), log SD of each random effect N(0, 1)), from structured variational Bayes, "
    "whose fixed and random effects are jointly Gaussian (SDs close to the exact posterior's); "
    "the z statistic and p-value are posterior mean / SD and its normal tail area"
)
VB_MEANFIELD_NOTE = (
    "std_error, z_statistic, p_value, ci_lower and ci_upper are mean-field variational "
    "posterior summaries, which understate uncertainty (posterior SDs are often much smaller "
    'than the exact posterior\'s); method "vb" (structured variational Bayes) or "laplace" '
    "(maximum likelihood) does not"
)
MCMC_NOTE = (
    "coefficient, std_error, ci_lower and ci_upper are posterior means, posterior SDs and "
    "equal-tailed credible intervals (quantiles alpha/2 and 1 - alpha/2 of the posterior draws) "
    "under the stated priors (fixed effects N(0, 2^2), log SD of each random effect N(0, 1)), "
    "from the exact posterior by MCMC (Polya-Gamma Gibbs sampler, seeded: the same call gives "
    "the same numbers); the z statistic and p-value are posterior mean / SD and its normal "
    "tail area"
)
NOTES = {"vb": VB_NOTE, "vb_meanfield": VB_MEANFIELD_NOTE, "mcmc": MCMC_NOTE}

#: The row that says a fit with the prior argument is a posterior mode.
PENALIZED_NOTE = (
    "a penalized fit: coefficients and variances are the posterior mode under the priors "
    "below (blme's bglmer), not maximum-likelihood estimates; std_error and the intervals come "
    "from the curvature of the penalized objective; log_likelihood, aic and bic are those of "
    "the model at these estimates"
)

#: The links of the contract (odds_ratio is shown for the logit only).
LINKS = ("logit", "probit", "cloglog", "cauchit")
DEFAULT_LINK = "logit"

MSG_Y_BINARY = "Invalid input: y must contain only 0 or 1 values."
MSG_ALPHA = "Invalid input: alpha must be between 0 and 1."
MSG_ROWS = "Invalid input: y, x, and groups must have the same number of rows."
MSG_FIT_INTERCEPT = "Invalid input: fit_intercept must be a boolean."

Cell = Any
Table = list[list[Cell]]


class _InputError(Exception):
    """An argument is unusable; the message is complete (starts with 'Invalid input: ')."""


def _invalid(text: str) -> _InputError:
    return _InputError(f"Invalid input: {text}")


@dataclass(frozen=True)
class _Request:
    """Validated arguments."""

    y: FloatArray
    x: FloatArray
    codes: NDArray[np.intp]
    levels: tuple[object, ...]
    x_random: FloatArray | None
    fit_intercept: bool
    alpha: float
    method: str
    link: str = DEFAULT_LINK
    priors: Priors = NO_PRIORS
    prior_ignored: bool = False


def glmm_binomial(
    y: Any,
    x: Any,
    groups: Any,
    x_random: Any = None,
    fit_intercept: Any = True,
    alpha: Any = 0.05,
    method: Any = "vb",
    link: Any = None,
    prior: Any = None,
) -> Table | str:
    """Binomial GLMM for spreadsheet ranges: the 9-column result table or a message.

    y: n x 1 range of 0/1; x: n x p predictors; groups: n x 1 labels; x_random: n x k
    random-slope predictors (a random intercept is always included; all components are
    independent); fit_intercept: add a fixed intercept; alpha: intervals at level 1 - alpha;
    method: "vb" (structured variational Bayes, posterior means and SDs), "laplace" or "agq"
    (maximum likelihood), "vb_meanfield" (mean-field variational Bayes, statsmodels' fit_vb;
    its SDs understate uncertainty), "mcmc" (the exact posterior by a seeded sampler,
    MCMC_SETTINGS; credible intervals are quantiles of its draws); link: "logit" (default),
    "probit", "cloglog" or "cauchit" ("laplace" and "agq"; the Bayesian methods fit the logit
    only). Coefficients are on the link's scale (log-odds for the logit); variances and SDs are
    of the random effects on that scale. prior: for "laplace" and "agq", "none", "blme" or the
    API's prior text (a penalized, posterior-mode fit). Never raises.
    """
    try:
        request = _validate(y, x, groups, x_random, fit_intercept, alpha, method, link, prior)
    except _InputError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - the contract: a message, never an exception
        return f"Invalid input: the arguments could not be read ({type(exc).__name__}: {exc})."
    try:
        data = _model_data(request)
        with warnings.catch_warnings():
            # Numerical warnings on degenerate data are not the user's business; the table's
            # converged and warning rows report what matters.
            warnings.simplefilter("ignore")
            result = _fit(data, request)
        separation = _fixed_separation(data, request, result)
    except Exception as exc:  # noqa: BLE001 - the contract: a message, never an exception
        return f"Error fitting GLMM: {_describe(exc)}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN/inf become blank cells, explained by warnings
            return _render(request, data, result, separation)
    except Exception as exc:  # noqa: BLE001
        return f"Error fitting GLMM: the result table could not be built ({_describe(exc)})"


GLMM_BINOMIAL = glmm_binomial


# --- reading ranges -------------------------------------------------------------------------
#
# Whole ranges are converted with numpy first (a set of the cells' Python types tells whether
# the fast conversion is exact); cells are scanned one by one only to word an error or for
# unusual cell types. 100,000 rows then cost milliseconds, not seconds.

#: Cell types numpy converts exactly and quickly to float64 (bool is refused or read as 0/1
#: separately; int beyond float range is caught by the conversion).
_PLAIN_NUMBERS = frozenset({int, float})

#: A range is the rows of cells as a list of lists, or a 2D numpy array of numbers.
Rows = Any


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value)


def _is_empty_token(value: Any) -> bool:
    """The ``formulas`` package's empty cell (schedula's EMPTY, a str subclass 'empty')."""
    return (
        isinstance(value, str)
        and type(value) is not str
        and type(value).__module__.startswith("schedula")
        and str.__str__(value) == "empty"  # Token compares by identity; its text is "empty"
    )


def _is_blank(value: Any) -> bool:
    """An empty cell as spreadsheets send it: None, "" (or only spaces), formulas' EMPTY."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == "" or _is_empty_token(value)
    return False


def _show(value: Any) -> str:
    """A short repr of a cell for messages."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_row_like(value: Any) -> bool:
    """A sequence of cells (a row): not text, not a mapping."""
    if isinstance(value, (list, tuple)):
        return True
    if isinstance(value, (str, bytes, dict, np.ndarray)):
        return isinstance(value, np.ndarray) and value.ndim == 1
    return isinstance(value, Sequence)


def _unwrap(value: Any) -> Any:
    """pandas objects, array-likes and 2D sequence objects as a list of rows or an array."""
    if isinstance(value, (list, tuple, np.ndarray, str, bytes)) or value is None:
        return value
    module = type(value).__module__
    if module.startswith("pandas") and hasattr(value, "to_numpy"):
        array = value.to_numpy()
        return array.reshape(-1, 1) if array.ndim == 1 else array  # a Series is a column
    inner = getattr(value, "value", None)  # formulas' Ranges hold their cells in .value
    if isinstance(inner, np.ndarray) and not isinstance(value, numbers.Number):
        return inner
    if hasattr(value, "__array__") and not isinstance(value, (numbers.Number, np.generic)):
        return np.asarray(value)
    if isinstance(value, Sequence):
        return [list(row) if _is_row_like(row) else row for row in value]
    return value


def _as_range(name: str, value: Any) -> Rows:
    """The rows of a 2D range: a new list of lists, or a 2D numeric array (not modified)."""
    value = _unwrap(value)
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return [[value.item()]]
        if value.ndim != 2:
            raise _invalid(f"{name} must be a 2D range; got an array with {value.ndim} dimensions.")
        if value.shape[0] == 0:
            raise _invalid(f"{name} is empty.")
        if value.shape[1] == 0:
            raise _invalid(f"{name} is empty: row 1 has no cells.")
        if value.dtype.kind in "biuf":
            return value
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        return [[value]]  # a scalar counts as a 1 x 1 range
    if len(value) == 0:
        raise _invalid(f"{name} is empty.")
    # Checks over whole rows run in C (map, set); the caller's lists are read, never copied
    # or modified.
    if not set(map(type, value)) <= {list, tuple}:
        is_row = [isinstance(row, (list, tuple)) for row in value]
        if not any(is_row):
            raise _invalid(
                f"{name} must be a 2D range (a list of rows, such as [[1], [0]]); "
                "got a flat list of values."
            )
        i = is_row.index(False)
        raise _invalid(f"{name} must be a 2D range: row {i + 1} is not a list of cells.")
    rows = value
    width = len(rows[0])
    if width == 0:
        raise _invalid(f"{name} is empty: row 1 has no cells.")
    lengths = set(map(len, rows))
    if len(lengths) > 1:
        i = next(i for i, row in enumerate(rows) if len(row) != width)
        raise _invalid(
            f"{name} must be rectangular: row {i + 1} has {len(rows[i])} cells, row 1 has {width}."
        )
    return rows


def _n_rows(rows: Rows) -> int:
    return int(rows.shape[0]) if isinstance(rows, np.ndarray) else len(rows)


def _n_columns(rows: Rows) -> int:
    return int(rows.shape[1]) if isinstance(rows, np.ndarray) else len(rows[0])


def _data_rows(rows: Rows) -> int:
    """Rows up to the last one holding a non-blank cell (numeric arrays have no blanks)."""
    if isinstance(rows, np.ndarray):
        return int(rows.shape[0])
    n = len(rows)
    while n > 0 and all(_is_blank(cell) for cell in rows[n - 1]):
        n -= 1
    return n


def _drop_trailing_blank_rows(ranges: list[Rows]) -> list[Rows]:
    """Cut the rows after the data that are blank in every range (a selection longer than the
    data); a range shorter than the data stays as it is (its length is then reported)."""
    n_data = max(_data_rows(rows) for rows in ranges[:3])  # y, x and groups set the length
    out = []
    for rows in ranges:
        keep = max(n_data, _data_rows(rows))
        out.append(rows[:keep] if _n_rows(rows) > keep else rows)
    return out


def _where(rows: Rows, i: int, j: int) -> str:
    """'row i' for one-column ranges, 'row i, column j' otherwise (1-based)."""
    return f"row {i + 1}" if _n_columns(rows) == 1 else f"row {i + 1}, column {j + 1}"


def _cell_problem(value: Any, booleans: bool = False) -> str | None:
    """Why a cell is not a finite number, or None if it is one (TRUE/FALSE is one when
    ``booleans``)."""
    # The common cases first, without the slower abstract-base-class checks below.
    kind = type(value)
    if (kind is float and math.isfinite(value)) or (kind is int and abs(value) < 2**1023):
        return None
    if _is_blank(value):
        return "is blank"
    if _is_bool(value):
        return None if booleans else "is TRUE/FALSE (a boolean), not a number"
    if isinstance(value, str):
        if _text_cell(value, booleans) is None:
            return f"is text ({_show(value)})"
        value = _text_cell(value, booleans)
    if isinstance(value, (list, tuple, dict, set, np.ndarray)):
        return "is a list (a range inside a cell)"
    if not _is_number(value):
        return f"is not a number ({type(value).__name__})"
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return "is not a finite number"
    if math.isnan(number):
        return "is NaN (not a number)"
    if math.isinf(number):
        return "is infinite"
    return None


def _text_cell(text: str, booleans: bool) -> float | None:
    """A text cell as the number it reads as (frame.text_number: the package's reader
    policy), or TRUE/FALSE text as 1/0 when ``booleans``; None when it is neither."""
    from glmm_binomial.model.frame import logical_text, text_number

    number = text_number(text)
    if number is None and booleans:
        flag = logical_text(text)
        number = None if flag is None else float(flag)
    return number


def _cell_float(value: Any, booleans: bool) -> float:
    """A cell that _cell_problem accepted, as a float."""
    if isinstance(value, str):
        number = _text_cell(value, booleans)
        assert number is not None
        return number
    return float(value)


def _to_float(rows: Rows, booleans: bool) -> FloatArray | None:
    """The whole range as float64 when that conversion is exact and every cell is a number
    (a boolean too when ``booleans``); None when cells must be looked at one by one."""
    if isinstance(rows, np.ndarray):
        if rows.dtype.kind == "b" and not booleans:
            return None
        return np.asarray(rows, dtype=np.float64)
    kinds = set(map(type, itertools.chain.from_iterable(rows)))
    allowed = _PLAIN_NUMBERS | {bool} if booleans else _PLAIN_NUMBERS
    if not kinds <= allowed:
        return None
    n, p = len(rows), len(rows[0])
    try:
        cells = itertools.chain.from_iterable(rows)
        return np.fromiter(cells, dtype=np.float64, count=n * p).reshape(n, p)
    except (OverflowError, ValueError, TypeError):
        return None


def _numeric(name: str, rows: Rows, booleans: bool = False) -> FloatArray:
    """The range as an n x p float array; every cell a finite number (TRUE/FALSE as 1/0 when
    ``booleans``)."""
    values = _to_float(rows, booleans)
    if values is None:
        cells = rows.tolist() if isinstance(rows, np.ndarray) else rows
        for i, row in enumerate(cells):
            for j, value in enumerate(row):
                problem = _cell_problem(value, booleans)
                if problem is not None:
                    raise _invalid(
                        f"{name} must contain finite numbers: {_where(rows, i, j)} {problem}."
                    )
        values = np.array([[_cell_float(v, booleans) for v in row] for row in cells], np.float64)
    finite = np.isfinite(values)
    if not np.all(finite):
        i, j = (int(k) for k in np.argwhere(~finite)[0])
        problem = "is NaN (not a number)" if np.isnan(values[i, j]) else "is infinite"
        raise _invalid(f"{name} must contain finite numbers: {_where(rows, i, j)} {problem}.")
    huge = np.abs(values) > LARGEST_VALUE
    if np.any(huge):
        i, j = (int(k) for k in np.argwhere(huge)[0])
        raise _invalid(
            f"{name} values must be at most {LARGEST_VALUE:g} in absolute value: "
            f"{_where(rows, i, j)} is {values[i, j]:g}; rescale it."
        )
    return values


def _single_column(name: str, rows: Rows) -> None:
    if _n_columns(rows) != 1:
        raise _invalid(f"{name} must be a single column; it has {_n_columns(rows)} columns.")


def _group_key(value: Any) -> object:
    """The label of one groups cell (a number or text; compared by frame.label_key)."""
    if _is_blank(value):
        raise ValueError("is blank")
    if isinstance(value, str):
        return str(value)
    problem = _cell_problem(value)
    if problem is not None:
        raise ValueError(problem)
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value)


#: Integers up to this size are exact in float64, so numeric labels may be compared as floats.
_EXACT_INTEGER = 2**53


def _fast_group_codes(rows: Rows) -> tuple[NDArray[np.intp], tuple[object, ...]] | None:
    """Codes and levels by np.unique when every label is a plain number (or every one
    non-blank text); None when the labels must be looked at one by one."""
    if isinstance(rows, np.ndarray):
        column = rows[:, 0]
        if column.dtype.kind == "b":
            return None
        if column.dtype.kind == "f" and not np.all(np.isfinite(column)):
            return None
    else:
        cells = list(itertools.chain.from_iterable(rows))  # one column
        kinds = set(map(type, cells))
        if kinds <= _PLAIN_NUMBERS:
            try:
                column = np.array(cells, dtype=np.float64 if float in kinds else np.int64)
            except (OverflowError, ValueError, TypeError):
                return None
            if not np.all(np.isfinite(column)) or np.any(np.abs(column) >= _EXACT_INTEGER):
                return None
        elif kinds == {str}:
            if any(not text.strip() for text in cells):
                return None
            column = np.array(cells, dtype=object)
        else:
            return None
    levels, codes = np.unique(column, return_inverse=True)
    codes = codes.reshape(-1).astype(np.intp)
    if levels.dtype.kind == "f":
        # Numbers equal to 15 significant digits are one label (R's as.character, the rule
        # of every input path); sorted, such numbers are neighbours.
        from glmm_binomial.model.frame import label_keys

        keys = label_keys(levels)
        first = np.concatenate([[True], keys[1:] != keys[:-1]]) if len(keys) else keys
        if not np.all(first):
            merged = np.cumsum(first) - 1
            return merged[codes].astype(np.intp), tuple(levels[first].tolist())
    return codes, tuple(levels.tolist())


def _group_codes(rows: Rows) -> tuple[NDArray[np.intp], tuple[object, ...]]:
    """Integer codes 0..G-1 and the levels (numbers in numeric order, then text sorted), labels
    matched by R's as.character as everywhere in the package (frame.factor_codes)."""
    fast = _fast_group_codes(rows)
    if fast is not None:
        return fast
    cells = rows.tolist() if isinstance(rows, np.ndarray) else rows
    labels = []
    for i, row in enumerate(cells):
        try:
            labels.append(_group_key(row[0]))
        except ValueError as exc:
            raise _invalid(
                f"groups must contain numbers or text labels: row {i + 1} {exc}."
            ) from None
    import pandas as pd

    from glmm_binomial.model.frame import factor_codes

    codes, levels, _ = factor_codes(pd.Series(labels, dtype=object))
    return codes, tuple(levels)


def _scalar(value: Any) -> Any:
    """A scalar argument may arrive as a 1 x 1 range (or a 1 x 1 array or pandas object)."""
    value = _unwrap(value)
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, np.generic):
        value = value.item()
    while isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _omitted(value: Any) -> bool:
    """An optional argument left out: None, or a blank (None, "" or an empty cell)."""
    return _is_blank(_scalar(value))


def _check_fit_intercept(value: Any) -> bool:
    value = _scalar(value)
    if _is_blank(value):
        return True
    if _is_bool(value):
        return bool(value)
    # Spreadsheets write TRUE/FALSE as 1/0 too.
    if _is_number(value) and value in (0, 1):
        return bool(value)
    raise _InputError(MSG_FIT_INTERCEPT)


def _check_alpha(value: Any) -> float:
    value = _scalar(value)
    if _is_blank(value):
        return 0.05
    if not _is_number(value):
        kind = "TRUE/FALSE" if _is_bool(value) else _show(value)
        raise _invalid(f"alpha must be a number between 0 and 1; got {kind}.")
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        raise _InputError(MSG_ALPHA) from None
    if not math.isfinite(number):
        raise _invalid(f"alpha must be a finite number between 0 and 1; got {number}.")
    if not 0.0 < number < 1.0:
        raise _InputError(MSG_ALPHA)
    return number


def _posterior(method: str) -> bool:
    """Whether `method`'s table holds posterior summaries (a note row says so)."""
    return method_class(method).posterior


def _available_methods() -> tuple[str, ...]:
    """The methods this installation offers, in METHODS order (all of the registry's)."""
    return METHODS


def _check_method(value: Any) -> str:
    value = _scalar(value)
    if _is_blank(value):
        value = DEFAULT_METHOD
    choices = ", ".join(f'"{m}"' for m in METHODS)
    if not isinstance(value, str):
        raise _invalid(f"method must be text, one of {choices}; got {_show(value)}.")
    method = value.strip().lower()
    if method not in METHODS:
        raise _invalid(f"method must be one of {choices}; got {_show(value)}.")
    available = _available_methods()
    if method not in available:
        names = ", ".join(f'"{m}"' for m in available)
        raise _invalid(f'method "{method}" is not available in this version; available: {names}.')
    return method


def _check_link(value: Any, method: str) -> str:
    value = _scalar(value)
    if _is_blank(value):
        value = DEFAULT_LINK
    choices = ", ".join(f'"{name}"' for name in LINKS)
    if not isinstance(value, str):
        raise _invalid(f"link must be text, one of {choices}; got {_show(value)}.")
    link = value.strip().lower()
    if link not in LINKS:
        raise _invalid(f"link must be one of {choices}; got {_show(value)}.")
    if not method_class(method).supports(make_family("binomial", link)):
        raise _invalid(
            f'link "{link}" is fitted by methods "laplace" and "agq"; method "{method}" fits '
            "the logit link only."
        )
    return link


def _shift_arguments(
    x_random: Any,
    fit_intercept: Any,
    alpha: Any,
    method: Any,
    link: Any = None,
    prior: Any = None,
) -> tuple[Any, ...]:
    """A boolean in the x_random position is fit_intercept (spreadsheet users skip x_random
    that way); later arguments shift left where their types say so. A blank x_random (None,
    "" or one empty cell) is an omitted one."""
    if _omitted(x_random):
        return None, fit_intercept, alpha, method, link, prior
    flag = _scalar(x_random)
    if not _is_bool(flag):
        return x_random, fit_intercept, alpha, method, link, prior
    given = _scalar(fit_intercept)
    if _is_bool(given):
        # fit_intercept's default is TRUE, so TRUE there cannot be told from an omission; FALSE
        # there with TRUE in x_random's position contradicts it.
        if flag and not given:
            raise _invalid(
                "x_random is TRUE, read as fit_intercept, but fit_intercept is also given as FALSE."
            )
        return None, bool(flag), alpha, method, link, prior
    if _is_blank(given):
        return None, bool(flag), alpha, method, link, prior
    # fit_intercept's position holds alpha, alpha's (if text) holds method, then method's (if
    # text naming a link) holds link, and link's (when the prior is omitted) holds prior.
    if isinstance(_scalar(alpha), str):
        moved = _scalar(method)
        if isinstance(moved, str) and moved.strip().lower() in LINKS:
            return None, bool(flag), fit_intercept, alpha, moved, link if _omitted(prior) else prior
        return None, bool(flag), fit_intercept, alpha, link, prior
    return None, bool(flag), fit_intercept, method, link, prior


def _check_prior(value: Any, method: str, n_fixed: int) -> tuple[Priors, bool]:
    """The priors of the prior argument, and whether they are ignored (a Bayesian method)."""
    value = _scalar(value)
    if _is_blank(value):
        return NO_PRIORS, False
    if not isinstance(value, str):
        raise _invalid(
            f'prior must be text: "none", "blme" or a prior such as '
            f'"fixef = t(df = 7, scale = 6.25); cov = wishart"; got {_show(value)}.'
        )
    try:
        priors = parse_priors(value)
        if priors.fixef is not None:
            priors.fixef.bind(n_fixed)
    except ValueError as error:
        raise _invalid(f"prior: {error}.") from None
    if priors.by_group and any(name != "groups" for name, _ in priors.by_group):
        raise _invalid('prior: the grouping factor of this function is called "groups".')
    if method_class(method).posterior:
        return NO_PRIORS, not priors.empty
    return priors, False


def _validate(
    y: Any,
    x: Any,
    groups: Any,
    x_random: Any,
    fit_intercept: Any,
    alpha: Any,
    method: Any,
    link: Any = None,
    prior: Any = None,
) -> _Request:
    """Check the arguments in a fixed order; the first problem found is reported."""
    x_random, fit_intercept, alpha, method, link, prior = _shift_arguments(
        x_random, fit_intercept, alpha, method, link, prior
    )
    ranges = [_as_range("y", y), _as_range("x", x), _as_range("groups", groups)]
    if x_random is not None:
        ranges.append(_as_range("x_random", x_random))
    ranges = _drop_trailing_blank_rows(ranges)
    for name, rows in zip(("y", "x", "groups"), ranges[:3], strict=False):
        # Only when y, x and groups are all blank is a range left without rows; y is named.
        if _n_rows(rows) == 0:
            raise _invalid(f"{name} is empty: every cell of y, x and groups is blank.")
    y_rows, x_rows, group_rows = ranges[:3]
    _single_column("y", y_rows)
    _single_column("groups", group_rows)
    n = _n_rows(y_rows)
    if not n == _n_rows(x_rows) == _n_rows(group_rows):
        raise _InputError(MSG_ROWS)
    if n < 2:
        raise _invalid(f"y, x, and groups need at least 2 rows; they have {n}.")
    y_values = _numeric("y", y_rows, booleans=True)[:, 0]
    if not np.all((y_values == 0.0) | (y_values == 1.0)):
        raise _InputError(MSG_Y_BINARY)
    x_values = _numeric("x", x_rows)
    codes, levels = _group_codes(group_rows)
    random_values = None
    if x_random is not None:
        random_rows = ranges[3]
        if _n_rows(random_rows) != n:
            raise _invalid(
                f"x_random must have the same number of rows as y ({n}); "
                f"it has {_n_rows(random_rows)}."
            )
        random_values = _numeric("x_random", random_rows)
    checked_method = _check_method(method)
    request = _Request(
        y=y_values,
        x=x_values,
        codes=codes,
        levels=levels,
        x_random=random_values,
        fit_intercept=_check_fit_intercept(fit_intercept),
        alpha=_check_alpha(alpha),
        method=checked_method,
        link=_check_link(link, checked_method),
    )
    priors, ignored = _check_prior(prior, request.method, len(_fixed_names(request)))
    request = replace(request, priors=priors, prior_ignored=ignored)
    _check_rank(_fixed_design(request), _fixed_names(request))
    return request


def _column_label(name: str) -> str:
    return "the intercept" if name == "intercept" else f"x column {name[1:]}"


def _check_rank(design: FloatArray, names: tuple[str, ...]) -> None:
    """Each column of the fixed-effects design must add a direction to the earlier ones."""
    n, p = design.shape
    if p > n:
        what = "x and the intercept have" if names[0] == "intercept" else "x has"
        raise _invalid(
            f"{what} {p} coefficients to estimate but y has only {n} rows: "
            "give more rows or fewer x columns."
        )
    largest = np.max(np.abs(design), axis=0)
    for j, name in enumerate(names):
        if largest[j] == 0.0:
            raise _invalid(
                f"{_column_label(name)} is all zero: its coefficient cannot be estimated."
            )
    # Unit-length columns (scaled to max |value| 1 first, so huge entries cannot overflow).
    scaled = design / largest
    scaled = scaled / np.sqrt(np.sum(scaled * scaled, axis=0))
    tol = RANK_TOL * max(scaled.shape)
    # The leading j columns of the design and of R (design = QR, Q orthonormal) have the same
    # singular values: one QR of the n x p design (O(n p^2) time, O(n p) memory), then only
    # p x p blocks.
    r: FloatArray = np.asarray(np.linalg.qr(scaled, mode="r"), dtype=np.float64)
    s = np.linalg.svd(r, compute_uv=False)
    if s[-1] > tol * s[0]:
        # Dropping columns never lowers the smallest singular value nor raises the largest
        # (interlacing), so every leading block passes too.
        return
    for j in range(1, len(names)):
        s = np.linalg.svd(r[: j + 1, : j + 1], compute_uv=False)
        if s[-1] <= tol * s[0]:
            earlier = ", ".join(_column_label(name) for name in names[:j])
            raise _invalid(
                f"{_column_label(names[j])} is a linear combination of {earlier}: "
                "the coefficients cannot be estimated separately."
            )


# --- the model ------------------------------------------------------------------------------


def _fixed_names(request: _Request) -> tuple[str, ...]:
    names = tuple(f"x{j + 1}" for j in range(request.x.shape[1]))
    return ("intercept", *names) if request.fit_intercept else names


def _fixed_design(request: _Request) -> FloatArray:
    if request.fit_intercept:
        return np.column_stack([np.ones(request.x.shape[0]), request.x])
    return request.x.copy()


def _model_data(request: _Request) -> ModelData:
    """Bernoulli rows; a random intercept per group and one independent random slope per
    x_random column on the same groups (each a k = 1 block)."""
    n = request.y.shape[0]
    columns = [("intercept", np.ones((n, 1)))]
    if request.x_random is not None:
        for j in range(request.x_random.shape[1]):
            columns.append((f"random_x{j + 1}", request.x_random[:, j : j + 1].copy()))
    blocks = tuple(
        RandomBlock("groups", (term,), request.codes, request.levels, z) for term, z in columns
    )
    return ModelData(
        successes=request.y.copy(),
        trials=np.ones(n),
        x=_fixed_design(request),
        offset=np.zeros(n),
        fixed_names=_fixed_names(request),
        blocks=blocks,
    )


def _fit(data: ModelData, request: _Request) -> FitOutput:
    """The core's estimates (api.fit_estimates: numbers, no result object, so a spreadsheet
    call loads no pandas). The table's intervals are computed from alpha itself (_interval),
    so no confidence level is handed to the core (1 - alpha rounds to 1.0 for alpha <
    1.1e-16)."""
    from glmm_binomial.api import fit_estimates

    n_agq = _n_agq(len(data.blocks)) if request.method == "agq" else None
    priors = None if request.priors.empty else request.priors
    sampler = MCMC_SETTINGS if request.method == "mcmc" else {}
    options = fit_options(request.method, n_agq=n_agq, priors=priors, **sampler)
    if request.link != DEFAULT_LINK:
        data = replace(data, family=make_family("binomial", request.link))
    return fit_estimates(data, options)


def _separation(data: ModelData) -> Separation:
    """Separation of y by the fixed-effects design, looked for only where it can be: the linear
    programs over every row run only when a sample of the rows is separable (a cheap necessary
    condition, separation.separation_possible)."""
    if not separation_possible(data.x, data.successes, data.trials):
        return NO_SEPARATION
    return detect_separation(data.x, data.successes, data.trials)


def _interval(
    estimate: FloatArray, std_error: FloatArray, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """Wald interval estimate -+ q std_error at level 1 - alpha, q = the normal upper alpha/2
    quantile (computed from alpha itself, exact for tiny alpha; inf when alpha/2 underflows)."""
    q = normal_quantile(alpha / 2.0)
    with np.errstate(invalid="ignore", over="ignore"):
        return estimate - q * std_error, estimate + q * std_error


def _n_agq(dimensions: int) -> int:
    """Points per dimension of the adaptive Gauss-Hermite rule (see AGQ_NODE_BUDGET)."""
    points = N_AGQ
    while points > AGQ_MIN_POINTS and points**dimensions > AGQ_NODE_BUDGET:
        points -= 1
    return points


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__


# --- the table ------------------------------------------------------------------------------


def _value(x: Any) -> float | None:
    """A finite Python float, or None (a blank cell) for NaN/inf."""
    number = float(x)
    return number if math.isfinite(number) else None


def _row(*cells: Cell) -> list[Cell]:
    return [*cells, *([None] * (WIDTH - len(cells)))]


def _separation_warning(request: _Request, names: tuple[str, ...], separation: Separation) -> str:
    kind = "complete separation" if separation.complete else "quasi-complete separation"
    which = ", ".join(names[j] for j in separation.coefficients)
    if request.priors.fixef is not None:
        return (
            f"{kind}: y is predicted perfectly by a combination of {which}; maximum likelihood "
            "has no finite estimate there, and these posterior-mode estimates are finite only "
            "because of the prior on the fixed effects, on which they depend"
        )
    if _posterior(request.method):
        return (
            f"{kind}: y is predicted perfectly by a combination of {which}; maximum likelihood "
            "has no finite estimate there, and these posterior means are finite only because of "
            "the N(0, 2^2) prior, on which they depend"
        )
    return (
        f"{kind}: y is predicted perfectly by a combination of {which}; maximum likelihood has "
        f"no finite estimate for {which}, so their cells are left blank (the fit drives them "
        "towards infinity)"
        + (
            "; nor for the random-effect variances, which no longer change the likelihood"
            if separation.complete
            else ""
        )
        + '; method "vb" gives finite posterior means'
    )


def _fixed_separation(data: ModelData, request: _Request, result: FitOutput) -> Separation:
    """Separation of y by the fixed effects: as the maximum-likelihood fit found it (not the
    groups' separation, whose warning the fit words itself), or for the Bayesian methods and
    fits under a prior on the fixed effects, whose estimates stay finite, by the linear
    programs on the data (_separation: only where a sample of the rows is separable)."""
    if _posterior(request.method) or request.priors.fixef is not None:
        return _separation(data)
    found: Separation = result.separation
    return NO_SEPARATION if found.blocks else found


def _render(request: _Request, data: ModelData, result: FitOutput, separation: Separation) -> Table:
    names = data.fixed_names
    table: Table = [list(FIXED_HEADER)]
    # The odds_ratio column is blank for links other than the logit.
    fixed = wald_statistics(
        result.beta, result.vcov_beta, 0.95, odds_ratios=request.link == DEFAULT_LINK
    )
    if result.posterior is not None:
        # Sampled draws: equal-tailed credible intervals, the tail given as alpha / 2 itself.
        bounds = [
            equal_tailed_interval(result.posterior.draws[name], request.alpha / 2.0)
            for name in data.fixed_names
        ]
        fixed["ci_lower"] = np.array([bound[0] for bound in bounds])
        fixed["ci_upper"] = np.array([bound[1] for bound in bounds])
    else:
        fixed["ci_lower"], fixed["ci_upper"] = _interval(
            fixed["estimate"], fixed["std_error"], request.alpha
        )
    # Maximum likelihood has no finite estimate for separated coefficients; a prior on the
    # fixed effects (the Bayesian methods', or the prior argument's) gives one.
    finite = _posterior(request.method) or request.priors.fixef is not None
    blank = set() if finite else set(separation.coefficients)
    columns = ("estimate", "std_error", "z", "p", "ci_lower", "ci_upper", "odds_ratio")
    for j, name in enumerate(names):
        if j in blank:
            table.append(_row(None, name))
            continue
        values = [_value(fixed[column][j]) for column in columns]
        table.append(_row(None, name, *values))
    table.append(_row(*RANDOM_HEADER))
    # Under complete separation the maximized likelihood is 1 whatever the variances, so
    # maximum likelihood says nothing about them either.
    blank_random = bool(blank) and separation.complete
    components = variance_components(data, result.theta)
    for component in components:
        if blank_random:
            table.append(_row(None, component.term))
        else:
            table.append(
                _row(None, component.term, _value(component.variance), _value(component.std_dev))
            )
    deviance, aic, bic = information_criteria(
        result.loglik, data.n_fixed + data.n_theta, data.n_obs
    )
    table.append(_row("log_likelihood", _value(result.loglik)))
    table.append(_row("aic", _value(aic)))
    table.append(_row("bic", _value(bic)))
    table.append(_row("n_obs", int(data.n_obs)))
    table.append(_row("n_groups", len(request.levels)))
    table.append(_row("method", request.method))
    fitted = make_family("binomial", request.link)  # the family _fit gave the model
    table.append(_row("family", fitted.name))
    table.append(_row("link", fitted.link))
    if request.method in NOTES:
        table.append(_row("note", NOTES[request.method]))
    if request.method == "agq":
        table.append(_row("n_agq", int(result.n_agq)))
    if result.priors:  # a penalized (posterior-mode) fit
        table.append(_row("note", PENALIZED_NOTE))
        for line in result.priors:
            table.append(_row("prior", line))
        table.append(_row("prior_deviance", _value(result.prior_deviance)))
        table.append(_row("penalized_objective", _value(deviance + result.prior_deviance)))
    if request.prior_ignored:
        table.append(
            _row(
                "note",
                f'the prior argument is ignored by method "{request.method}", whose '
                "priors are fixed",
            )
        )
    # A fit that drives coefficients to infinity has not converged to an estimate.
    table.append(_row("converged", bool(result.converged) and not blank))
    if separation.coefficients:
        table.append(_row("warning", _separation_warning(request, names, separation)))
    for text in result.warnings:
        # The table's own separation row (above) says it in the table's words.
        if not (separation.coefficients and "separation" in str(text)):
            table.append(_row("warning", str(text)))
    shown = [row for row in table[1 : 1 + len(names)] if row[2] is not None]
    if any(row[3] is not None and (row[6] is None or row[7] is None) for row in shown):
        reason = (
            "too far in the tails for the posterior draws (fewer than one draw is expected "
            "beyond it)"
            if result.posterior is not None
            else "unbounded in floating point"
        )
        table.append(
            _row(
                "warning",
                f"the confidence interval at level 1 - alpha (alpha = {request.alpha:g}) is "
                f"{reason} and its cells are left blank: use a larger alpha",
            )
        )
    if any(row[3] is None for row in shown):
        table.append(
            _row(
                "warning",
                "some standard errors are unavailable (left blank): the curvature of the "
                "log-likelihood is not positive definite at the estimates",
            )
        )
    if not _posterior(request.method) and not blank_random:
        for term, std_dev in ((c.term, c.std_dev) for c in components):
            if np.isfinite(std_dev) and std_dev > LARGE_SD:
                table.append(
                    _row(
                        "warning",
                        f"the random-effect SD of {term} is {float(std_dev):.4g} on the "
                        f"{'log-odds' if request.link == DEFAULT_LINK else request.link} "
                        "scale: the groups (nearly) separate y (groups with only 0s or only 1s), "
                        "and maximum likelihood may have no finite estimate; treat these numbers "
                        'with caution (method "vb" keeps the SDs finite)',
                    )
                )
    return table
