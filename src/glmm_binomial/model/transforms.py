"""formulaic as R users' formulas need it: the evaluation context and materialization.

* ``FORMULA_CONTEXT``: names R users write that formulaic lacks or treats differently
  (``factor(x)`` is formulaic's ``C(x)``; ``bs()`` extends its end pieces beyond the boundary
  knots as R's ``predict.bs`` does, where formulaic raises).
* ``materialize``/``rebuild``: a design matrix from formula text, and again for new data from
  the fit's model spec (stateful transforms such as scale, center, poly and bs re-applied with
  the fit's parameters), with formulaic's errors as plain ValueErrors that say what to do.
* ``evaluate_response``: the response expression (``I(y == 1)``, ``size - incidence``).
"""

from __future__ import annotations

import copy
import functools
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import DataMismatchWarning
from formulaic.transforms import C, basis_spline, stateful_transform
from numpy.typing import NDArray

from glmm_binomial.model.direct_design import direct_matrix, evaluate_on_columns
from glmm_binomial.model.formula import clean_message, r_names
from glmm_binomial.model.frame import Table, as_frame
from glmm_binomial.model.r_coding import MATERIALIZER, r_ordered_formula

__all__ = [
    "FORMULA_CONTEXT",
    "evaluate_response",
    "factor_column",
    "formulaic_error",
    "materialize",
    "private_spec",
    "r_bs",
    "r_dummy",
    "rebuild",
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
    random effect of one level of a factor."""
    values = pd.Series(np.asarray(f, dtype=object))
    categories = getattr(getattr(f, "dtype", None), "categories", None)
    levels = (
        [str(c) for c in categories]
        if categories is not None
        else sorted({str(v) for v in values.dropna()})
    )
    if levels_to_keep is None:
        keep = levels[1:]
    elif isinstance(levels_to_keep, str | int | float):
        keep = [str(levels_to_keep)]
    else:
        keep = [str(level) for level in levels_to_keep]
    unknown = [level for level in keep if level not in levels]
    if unknown or not keep:
        raise ValueError(
            f"dummy(): levels to keep {unknown or keep} are not levels of the factor {levels}"
        )
    text = values.map(lambda v: None if pd.isna(v) else str(v))
    index = getattr(f, "index", None)
    columns = {level: np.where(text.isna(), np.nan, text == level) for level in keep}
    if len(keep) == 1:
        return pd.Series(columns[keep[0]].astype(float), index=index)
    return pd.DataFrame({k: v.astype(float) for k, v in columns.items()}, index=index)


FORMULA_CONTEXT: dict[str, Any] = {
    "bs": r_bs,
    "dummy": r_dummy,
    "factor": C,
    "as_factor": C,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "log1p": np.log1p,
    "expm1": np.expm1,
}
"""Names R users write in formulas that formulaic does not define (``factor(x)`` is ``C(x)``)."""

# Functions a response expression may call, e.g. ``I(y == 1)`` or ``cbind(k, log(n) - k)``.
RESPONSE_FUNCTIONS: dict[str, Any] = {
    "I": lambda value: value,
    "log": np.log,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "round": np.round,
    "np": np,
    "numpy": np,
}


def evaluate_response(expr: str, frame: Table) -> pd.Series:
    """A response expression: a column name, or arithmetic on columns (``size - incidence``,
    ``I(y == 1)``, `` `y.obs` ``)."""
    if expr in frame.columns:
        return frame[expr]
    try:
        value = evaluate_on_columns(expr, frame, RESPONSE_FUNCTIONS)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"cannot evaluate response expression '{expr}': {exc}") from None
    if not isinstance(value, pd.Series):
        value = pd.Series(np.broadcast_to(np.asarray(value), (len(frame),)), index=frame.index)
    return value


def formulaic_error(what: str, exc: BaseException) -> ValueError:
    message = clean_message(exc)
    hint = ""
    if "NameError" in message or "not defined" in message or "SyntaxError" in message:
        hint = (
            "; write column names with spaces or symbols in backticks, as in `my column`, and "
            "check the spelling of functions (log, scale, poly, bs, factor, offset, I)"
        )
    return ValueError(f"cannot build {what}: {message}{hint}")


# A "." standing alone (formulaic's "all other columns") depends on the data: never cached.
DATA_DEPENDENT_RE = re.compile(r"(^|[^\w.])\.($|[^\w.])")


@functools.lru_cache(maxsize=256)
def parsed_formula(expr: str) -> Formula:
    """formulaic's Formula of a right-hand side, parsed once per text (a refit, a bootstrap or a
    power simulation materializes the same text again; parsing is a third of formulaic's time
    on a small design), with each interaction's factors in R's order (model.r_coding). Shared:
    never modified."""
    return r_ordered_formula(expr)


def materialize(expr: str, frame: Table, what: str) -> tuple[FloatArray, list[str], Any]:
    """The matrix of right-hand side `expr` on frame, its column names (R's spelling) and
    formulaic's model spec (to rebuild it for new data). Plain terms (intercept, numeric or
    categorical columns) are built with numpy (model.direct_design), anything else by
    formulaic."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            spec: Any = expr if DATA_DEPENDENT_RE.search(expr) else parsed_formula(expr)
            if not isinstance(spec, str):
                direct = direct_matrix(expr, spec, frame, FORMULA_CONTEXT)
                if direct is not None:
                    return direct
            # numpy output: the same values and spec, without building a DataFrame.
            mm = model_matrix(
                spec,
                as_frame(frame),
                na_action="ignore",
                context=FORMULA_CONTEXT,
                output="numpy",
                materializer=MATERIALIZER,
            )
    except Exception as exc:  # noqa: BLE001 - formulaic raises many types; name the term
        raise formulaic_error(f"{what} '{expr}'", exc) from None
    names = r_names([str(c) for c in mm.model_spec.column_names])
    values = np.asarray(mm, dtype=np.float64)
    if values.ndim == 1:  # a matrix of one column may come back flat
        values = values[:, None]
    return values, names, mm.model_spec


def private_spec(spec: Any) -> Any:
    """A copy of a fit's formulaic model spec whose encoder and transform states are its own.

    formulaic writes into the spec it materializes from (``encoder_state[factor] = ...``, even
    when it then raises): materializing from the fit's own spec would let one call on bad new
    data (text in a numeric column) change what every later call builds. Each call therefore
    works on a copy, and the fit's spec is never written to."""
    return spec.update(
        encoder_state=copy.deepcopy(spec.encoder_state),
        transform_state=copy.deepcopy(spec.transform_state),
    )


def rebuild(spec: Any, frame: pd.DataFrame, what: str) -> FloatArray:
    """A fit's matrix rebuilt for new data from its formulaic model spec (stateful transforms
    such as scale, poly and bs re-applied with the fit's parameters; the spec is not changed,
    see ``private_spec``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("error", DataMismatchWarning)
            matrix = private_spec(spec).get_model_matrix(
                frame, na_action="ignore", context=FORMULA_CONTEXT
            )
    except DataMismatchWarning as exc:
        raise ValueError(
            f"newdata does not match the fit for {what}: {clean_message(exc)}"
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise formulaic_error(f"{what} for newdata", exc) from None
    return np.asarray(matrix, dtype=np.float64)


FACTOR_CALL_RE = re.compile(r"^(?:C|factor|as_factor)\(\s*`?([^`,()]+?)`?\s*(?:,.*)?\)$")


def factor_column(expr: str, frame: Table) -> tuple[str, bool] | None:
    """The column a categorical factor expression reads: (name, True) for the column itself,
    (name, False) for ``factor(name)``/``C(name, ...)``; None for anything else."""
    plain = expr[1:-1] if expr.startswith("`") and expr.endswith("`") else expr
    if plain in frame.columns:
        return plain, True
    match = FACTOR_CALL_RE.match(expr)
    if match is not None and match.group(1) in frame.columns:
        return match.group(1), False
    return None
