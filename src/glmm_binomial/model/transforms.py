"""formulaic as R users' formulas need it: the evaluation context and materialization.

* ``FORMULA_CONTEXT``: names R users write that formulaic lacks or treats differently
  (``factor(x)`` is formulaic's ``C(x)``; R's functions from model.r_functions: ``bs()``
  extends its end pieces beyond the boundary knots as R's ``predict.bs`` does, where
  formulaic raises, ``ns()``, ``cut()``, ``dummy()``, ..).
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
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import DataMismatchWarning
from formulaic.transforms import TRANSFORMS, C
from numpy.typing import NDArray

from glmm_binomial.model.direct_design import direct_matrix, evaluate_on_columns
from glmm_binomial.model.formula import R_NAME_RE, clean_message, r_names, r_text
from glmm_binomial.model.frame import Table, as_frame
from glmm_binomial.model.r_coding import MATERIALIZER, r_ordered_formula
from glmm_binomial.model.r_contrasts import CONTRAST_FUNCTIONS, CONTRAST_NAMES, r_C
from glmm_binomial.model.r_functions import (
    NUMERIC_FUNCTIONS,
    r_as_logical,
    r_bs,
    r_cut,
    r_dummy,
    r_factor,
    r_factor_response,
    r_interaction,
    r_ns,
    r_ordered,
    r_relevel,
)

__all__ = [
    "FORMULA_CONTEXT",
    "evaluate_response",
    "factor_call_column",
    "factor_column",
    "formulaic_error",
    "materialize",
    "private_spec",
    "rebuild",
]

FloatArray = NDArray[np.float64]


FORMULA_CONTEXT: dict[str, Any] = {
    **NUMERIC_FUNCTIONS,
    "bs": r_bs,
    "ns": r_ns,
    "cut": r_cut,
    "dummy": r_dummy,
    "factor": r_factor,
    "ordered": r_ordered,
    "as_factor": C,
    "as_character": C,
    "as_logical": r_as_logical,
    "relevel": r_relevel,
    "interaction": r_interaction,
    "C": r_C,
    # R's T and F (base's variables, which a column of that name hides, as here the data).
    "T": True,
    "F": False,
    "contr": CONTRAST_FUNCTIONS,
    "r_contrast": CONTRAST_NAMES,
}
"""Names R users write in formulas that formulaic does not define (``factor(x)`` is ``C(x)``;
model.r_functions)."""


def r_namespaces(context: dict[str, Any]) -> dict[str, SimpleNamespace]:
    """R's packages as objects whose attributes are the context's functions (with formulaic's
    poly and scale), for the parser's pkg.f of R's qualified call pkg::f (formula.R_NAMESPACES):
    splines (ns, bs), stats (poly, the distribution functions, summaries, relevel) and base
    (everything else the context has)."""
    functions = {**TRANSFORMS, **context}
    packages = {
        "splines": ("ns", "bs"),
        "stats": ("poly", "plogis", "qlogis", "pnorm", "qnorm", "median", "sd", "var", "relevel"),
    }
    taken = {name for names in packages.values() for name in names}
    out = {
        package: SimpleNamespace(**{n: functions[n] for n in names if n in functions})
        for package, names in packages.items()
    }
    out["base"] = SimpleNamespace(
        **{n: f for n, f in functions.items() if n not in taken and n.isidentifier()}
    )
    return out


FORMULA_CONTEXT.update(r_namespaces(FORMULA_CONTEXT))

# Functions a response expression may call, e.g. ``I(y == 1)`` or ``cbind(k, log(n) - k)``.
RESPONSE_FUNCTIONS: dict[str, Any] = {
    **NUMERIC_FUNCTIONS,
    "I": lambda value: value,
    "round": np.round,
    "np": np,
    "numpy": np,
    "factor": r_factor_response,
    "as_factor": r_factor_response,
}
RESPONSE_FUNCTIONS.update(r_namespaces(RESPONSE_FUNCTIONS))


def evaluate_response(expr: str, frame: Table) -> pd.Series:
    """A response expression: a column name, or arithmetic on columns (``size - incidence``,
    ``I(y == 1)``, `` `y.obs` ``)."""
    if expr in frame.columns:
        return frame[expr]
    try:
        value = evaluate_on_columns(expr, frame, RESPONSE_FUNCTIONS)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"cannot evaluate response expression '{r_text(expr)}': {exc}") from None
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
    elif "same shape" in message:
        # A term whose value is one number (mean(x), min(x), a constant named as a column).
        hint = (
            "; a term whose value is a single number (mean(x), max(x), pi) is no column: use "
            "it inside an expression, as in I(x - mean(x)) (a column named like R's constant "
            "pi needs another name)"
        )
    return ValueError(f"cannot build {what}: {message}{hint}")


@functools.lru_cache(maxsize=256)
def parsed_formula(expr: str) -> Formula:
    """formulaic's Formula of a right-hand side, parsed once per text (a refit, a bootstrap or a
    power simulation materializes the same text again; parsing is a third of formulaic's time
    on a small design), with each interaction's factors in R's order (model.r_coding). Shared:
    never modified."""
    return r_ordered_formula(expr)


def materialize(
    expr: str, frame: Table, what: str, contrasts: dict[str, Any] | None = None
) -> tuple[FloatArray, list[str], Any]:
    """The matrix of right-hand side `expr` on frame, its column names (R's spelling) and
    formulaic's model spec (to rebuild it for new data). Plain terms (intercept, numeric or
    categorical columns) are built with numpy (model.direct_design), anything else by
    formulaic. contrasts: fit()'s contrasts= as model.r_contrasts.contrasts_argument gives it
    (kept in the spec, so that new data are coded the same)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            spec = parsed_formula(expr)
            if not contrasts:
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
                **({"materializer_params": {"r_contrasts": contrasts}} if contrasts else {}),
            )
    except Exception as exc:  # noqa: BLE001 - formulaic raises many types; name the term
        raise formulaic_error(f"{what} '{r_text(expr)}'", exc) from None
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

RELEVEL_CALL_RE = re.compile(r"^relevel\(\s*(.+?)\s*,.*\)$")
"""relevel(f, ref): f is a column or a factor call (its first argument without a comma)."""


def factor_call_column(text: str) -> str | None:
    """The column a factor call reads: x of factor(x), C(x, ..), as_factor(x), relevel(x, ref)
    or relevel(factor(x), ref); None for any other expression."""
    relevel = RELEVEL_CALL_RE.match(text)
    if relevel is not None:
        inner = relevel.group(1)
        if inner.startswith("`") and inner.endswith("`"):
            return inner[1:-1]
        if R_NAME_RE.fullmatch(inner):
            return inner
        text = inner
    match = FACTOR_CALL_RE.match(text)
    return None if match is None else match.group(1)


CUT_CALL_RE = re.compile(r"^(?:base\.)?cut\(\s*`?([^`,()]+?)`?\s*,.*\)$")
"""cut(x, ...) of one variable: a factor of x's intervals (r_cut keeps their breaks)."""


LABELS_RE = re.compile(r",\s*labels\s*=")
"""factor()'s labels keyword argument (its codes are then not the column's values)."""


def factor_column(expr: str, frame: Table) -> tuple[str, bool] | None:
    """The column a categorical factor expression reads: (name, True) for the column itself,
    (name, False) for ``factor(name)``/``C(name, ...)``; None for anything else."""
    plain = expr[1:-1] if expr.startswith("`") and expr.endswith("`") else expr
    if plain in frame.columns:
        return plain, True
    name = factor_call_column(expr)
    if name is not None and name in frame.columns and not LABELS_RE.search(expr):
        # factor(f, labels = ..) encodes other names than f's values: r_factor checks them.
        return name, False
    return None
