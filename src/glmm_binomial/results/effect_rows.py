"""What the marginal-effect functions share (results.slopes, results.average_predictions,
results.coefficient_tests), as R's marginaleffects 0.11.0 does it for a glmer fit: the rows
(by default those the model was fitted to, found again through results.base.data_rows; or
``newdata``, or a summary row "mean"/"median"/"tukey"), the variables that may change, the
predictions of settings of the rows (each a copy of the rows with variables changed, stacked
into batches of up to BATCH_ROWS for one rebuild of the design), group means, and the tables.

mu is the prediction on the scale ``type``: "response" (the probability, the family's
inverse link; the default) or "link" (the linear predictor). ``re`` says which random effects
the prediction adds (at their conditional modes; as predict's ``re``: "include", the default,
as R's predict for a glmer fit without re.form; "exclude", R's re.form = NA; or a list of
grouping factors). Changing a variable rebuilds the row's whole design, so interactions,
transforms (I(age^2), poly(), scale()) and random slopes in that variable follow it.

Standard errors are by the delta method in the fixed effects only (the random effects held at
their modes, as marginaleffects does): J V J' with V the covariance of beta and J the exact
derivative of the estimate in beta (marginaleffects takes J by finite differences). z =
(estimate - null) / SE, two-sided p-values, Wald intervals estimate -/+ q SE (normal, df =
Inf as marginaleffects for a glmer fit, unless df= is given); the tests' other arguments
(hypothesis, equivalence, p_adjust, transform, df) as results.hypothesis.Tests carries them.

A fit with posterior draws (method "mcmc") is summarized as marginaleffects summarizes a brms
fit: each estimate computed at every draw of the fixed effects (the random effects at their
posterior means: their draws are not kept), then the draws' median and equal-tailed credible
interval (draws_table; no SE, z or p-value). The variational methods' estimates are at the
posterior means, with the posterior covariance of beta in the delta method.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
from numpy.typing import NDArray

from glmm_binomial.arguments import fraction
from glmm_binomial.model.design import DesignInfo, encoded_factor_levels
from glmm_binomial.model.formula import expression_variables
from glmm_binomial.model.frame import ColumnReading, as_pandas, label_key, read_series, row_values
from glmm_binomial.model.newdata import new_data_design
from glmm_binomial.numerics.covariance import LimitCovariance, moving_rows, row_variances
from glmm_binomial.results.base import ResultBase, data_rows, require_fit
from glmm_binomial.results.datagrid import summary_rows
from glmm_binomial.results.hypothesis import (
    Tests,
    apply_hypothesis,
    equation_draws,
    equivalence_tests,
    null_value,
)
from glmm_binomial.results.multiplicity import p_adjust as adjusted_p_values
from glmm_binomial.results.prediction import chosen_blocks, linear_predictor

__all__ = [
    "BATCH_ROWS",
    "DRAW_BLOCK",
    "Common",
    "Predicted",
    "Rows",
    "Setting",
    "TYPES",
    "by_columns",
    "by_keys",
    "column_numbers",
    "common_inputs",
    "draw_shifts",
    "draws_table",
    "effect_notes",
    "effect_table",
    "factor_levels",
    "group_codes",
    "group_draw_means",
    "group_means",
    "mu_draws",
    "posterior_beta",
    "predict_settings",
    "r_number",
    "variable_specs",
]

FloatArray = NDArray[np.float64]


TYPES = ("response", "link")


@dataclass(frozen=True)
class Setting:
    """The rows' data with one variable changed (``frame``), for one side of a contrast."""

    frame: pd.DataFrame
    label: str


@dataclass(frozen=True)
class Rows:
    """The rows compared: the data (as pandas), the offset of its rows when fit() was given
    offset= values (None: none, or taken from the data as the fit took it) and the weights of
    the averages (None: equal)."""

    frame: pd.DataFrame
    offset: FloatArray | None
    weights: FloatArray | None = None
    fitted: bool = False  # the rows are those the model was fitted to


def _check(result: Any, what: str) -> DesignInfo:
    design = require_fit(result, what).design
    if design is None:
        raise ValueError(
            f"{what} needs a result fitted from a formula (glmm_binomial.fit): this one was "
            "fitted from arrays, whose columns cannot be changed one variable at a time"
        )
    return design


def _rows(
    result: ResultBase, design: DesignInfo, newdata: Any, offset: Any, what: str, by: list[str]
) -> Rows:
    if isinstance(newdata, str):  # a summary row ("mean": the marginal effect at the mean)
        newdata = summary_rows(result, newdata, by)
    if newdata is None:
        if offset is not None:
            raise ValueError("offset applies only with newdata")
        frame, values = data_rows(result, what)
        return Rows(frame, values, fitted=True)
    frame = as_pandas(newdata, "newdata")
    if len(frame) == 0:
        raise ValueError("newdata has no rows")
    index = frame.index if isinstance(newdata, pd.DataFrame) else None
    return Rows(frame, row_values("offset", offset, len(frame), index))


def _model_variables(design: DesignInfo) -> list[str]:
    """The variables of the fixed part (offsets excluded), alphabetically."""
    return sorted(expression_variables(design.formula.fixed))


def variable_specs(variables: Any, design: DesignInfo, comparison: bool) -> dict[str, Any]:
    """``variables`` as {name: spec} (spec None: the default), names checked."""
    fixed = _model_variables(design)
    if variables is None:
        if not fixed:
            raise ValueError("the model's fixed part has no variable to change")
        return dict.fromkeys(fixed)
    if isinstance(variables, str):
        specs: dict[str, Any] = {variables: None}
    elif isinstance(variables, Mapping):
        if not comparison:
            raise ValueError(
                "variables: slopes take variable names (a name or a list of them); give a "
                "change to compare by with comparisons()"
            )
        specs = dict(variables)
    elif isinstance(variables, Sequence) and all(isinstance(v, str) for v in variables):
        if len(set(variables)) != len(variables):
            raise ValueError(f"variables names a variable twice: {list(variables)!r}")
        specs = dict.fromkeys(variables)
    else:
        raise ValueError(
            "variables must be a variable name, a list of them"
            + (" or a dict of name -> change" if comparison else "")
            + f", got {variables!r}"
        )
    if not specs:
        raise ValueError("variables names no variable")
    allowed = set(fixed)
    groups = {g for spec in design.random_specs for g in spec.term.group}
    for name in specs:
        if not isinstance(name, str) or name not in allowed:
            hint = (
                " (a grouping factor: effects are of the fixed part's variables)"
                if name in groups
                else ""
            )
            raise ValueError(
                f"variables: {name!r} is not a variable of the fixed part{hint} (variables: "
                f"{', '.join(sorted(allowed)) or 'none'})"
            )
    return {name: specs[name] for name in sorted(specs)}


def factor_levels(design: DesignInfo, names: list[str]) -> dict[str, tuple[Any, ...]]:
    """The levels of each of ``names`` the fit treats as a factor (encoded as one, or a text
    or logical column), as emmeans' reference grid finds them."""
    found = encoded_factor_levels(design, names)
    for summary in design.variables:
        if summary.name in names and summary.name not in found and summary.kind == "factor":
            found[summary.name] = summary.levels
    return found


def _reading(design: DesignInfo, name: str) -> ColumnReading | None:
    return next((r for r in design.columns if r.name == name), None)


def column_numbers(frame: pd.DataFrame, design: DesignInfo, name: str) -> FloatArray:
    """The column ``name`` of ``frame`` read as numbers, as the fit read it."""
    if name not in frame.columns:
        raise ValueError(f"newdata lacks column {name!r} that the model uses")
    reading = _reading(design, name) or ColumnReading(name, "number")
    return np.asarray(read_series(frame[name], reading, "newdata"), dtype=np.float64)


def r_number(value: float) -> str:
    """A number as R's as.character writes it (15 significant digits, no trailing .0)."""
    return label_key(float(value))


@dataclass(frozen=True)
class Predicted:
    """mu on the chosen scale, d mu / d eta and X over the rows (NaN where a row lacks a
    value)."""

    mu: FloatArray
    slope: FloatArray
    x: FloatArray
    eta: FloatArray  # the linear predictor (for the posterior draws of mu)


BATCH_ROWS = 200_000
"""Most rows predicted by one rebuild of the design: the settings of a call are stacked up to
this many rows (one rebuild costs about as much for 2,000 rows as for 20,000)."""


def predict_settings(
    result: ResultBase,
    design: DesignInfo,
    settings: Sequence[Setting],
    offset: FloatArray | None,
    blocks: tuple[int, ...],
    type: str,
) -> list[Predicted]:
    """The predictions of each setting's rows, the settings' frames stacked into batches of
    at most BATCH_ROWS rows for the design's rebuild."""
    out: list[Predicted] = []
    start = 0
    while start < len(settings):
        n = len(settings[start].frame)
        stop = start + max(1, BATCH_ROWS // max(n, 1))
        batch = settings[start:stop]
        frame = pd.concat([s.frame for s in batch], ignore_index=True)
        values = None if offset is None else np.tile(offset, len(batch))
        out.extend(_split(_predict_rows(result, design, frame, values, blocks, type), len(batch)))
        start = stop
    return out


def _split(predicted: Predicted, parts: int) -> list[Predicted]:
    n = len(predicted.mu) // parts
    return [
        Predicted(
            predicted.mu[i * n : (i + 1) * n],
            predicted.slope[i * n : (i + 1) * n],
            predicted.x[i * n : (i + 1) * n],
            predicted.eta[i * n : (i + 1) * n],
        )
        for i in range(parts)
    ]


def _predict_rows(
    result: ResultBase,
    design: DesignInfo,
    frame: pd.DataFrame,
    offset: FloatArray | None,
    blocks: tuple[int, ...],
    type: str,
) -> Predicted:
    new = new_data_design(design, frame, offset, random=blocks)
    eta, _ = linear_predictor(result.fit_output, new.x, new.offset, new.random, new.blocks, False)
    n = new.complete.shape[0]
    family = result.fitted_family
    mu = np.full(n, np.nan)
    slope = np.full(n, np.nan)
    x = np.full((n, new.x.shape[1]), np.nan)
    x[new.complete] = new.x
    linear = np.full(n, np.nan)
    linear[new.complete] = eta
    if type == "response":
        mu[new.complete] = family.inverse_link(eta)
        slope[new.complete] = family.mu_eta(eta)
    else:
        mu[new.complete] = eta
        slope[new.complete] = 1.0
    return Predicted(mu, slope, x, linear)


DRAW_BLOCK = 256
"""Posterior draws of the predictions computed together (rows x DRAW_BLOCK values at a
time)."""


def posterior_beta(result: ResultBase) -> FloatArray | None:
    """The fixed effects' posterior draws of a sampling fit ("mcmc"), one row per draw (the
    chains pooled), columns in design order; None for a fit without draws."""
    posterior = result.posterior
    if posterior is None:
        return None
    columns = [
        np.asarray(posterior.draws[name], dtype=np.float64).ravel() for name in result.fixed_names
    ]
    return np.column_stack(columns)


def mu_draws(predicted: Predicted, shift: FloatArray, result: ResultBase, type: str) -> FloatArray:
    """The rows' predictions at draws of beta (rows x draws): eta + X (beta_d - beta), the
    random effects held at their posterior means, on the scale ``type``; ``shift`` holds
    beta_d - beta as columns."""
    eta = predicted.eta[:, None] + np.nan_to_num(predicted.x) @ shift
    eta[~np.isfinite(predicted.eta)] = np.nan
    if type == "link":
        return eta
    return result.fitted_family.inverse_link(eta.ravel()).reshape(eta.shape)


def group_draw_means(
    codes: NDArray[np.intp], n_groups: int, values: FloatArray, weights: FloatArray | None
) -> FloatArray:
    """Means of the rows of ``values`` (rows x draws) within each group (codes as group_means;
    a row without a finite value at every draw left out), weighted by ``weights``."""
    use = np.isfinite(values).all(axis=1) & (codes >= 0)
    members, counts = _membership(codes, n_groups, use, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (members @ np.where(use[:, None], values, 0.0)) / counts[:, None]
    return np.asarray(mean, dtype=np.float64)


def _membership(
    codes: NDArray[np.intp], n_groups: int, use: NDArray[np.bool_], weights: FloatArray | None
) -> tuple[scipy.sparse.csr_matrix, FloatArray]:
    """The groups x rows matrix of the rows' weights in their groups (the rows ``use`` says;
    weight 1 without ``weights``) and each group's total weight."""
    w = np.ones(int(use.sum())) if weights is None else weights[use]
    members = scipy.sparse.csr_matrix(
        (w, (codes[use], np.flatnonzero(use))), shape=(n_groups, len(use))
    )
    return members, np.asarray(members.sum(axis=1), dtype=np.float64).ravel()


def draw_shifts(result: ResultBase, beta_draws: FloatArray) -> Iterator[FloatArray]:
    """beta_d - beta for the draws of beta, as columns, DRAW_BLOCK draws at a time (what
    mu_draws shifts the predictions by)."""
    shifts = (beta_draws - np.asarray(result.fit_output.beta, dtype=np.float64)).T
    for start in range(0, shifts.shape[1], DRAW_BLOCK):
        yield shifts[:, start : start + DRAW_BLOCK]


def draws_table(
    keys: dict[str, Any],
    draws: FloatArray | Iterable[FloatArray],
    conf_level: float,
    tests: Tests,
    labelled: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The columns ``keys``, then the median of each estimate's posterior draws (``draws``:
    one row per estimate, or consecutive parts of those rows, each summarized as it comes
    when nothing combines rows) and its equal-tailed credible interval at ``conf_level``
    (marginaleffects' summary of draws: no SE, z or p-value), of the estimates or of the
    functions of them that ``tests.hypothesis`` asks for, after ``tests.transform``."""
    hypothesis = tests.hypothesis
    parts: Iterable[FloatArray] = [draws] if isinstance(draws, np.ndarray) else draws
    if hypothesis is not None:
        whole = np.concatenate(list(parts), axis=0)
        terms = list(keys["term"]) if "term" in keys else None
        labels = _row_labels({k: keys[k] for k in (labelled if labelled is not None else keys)})
        # For keywords and weights (linear maps W) the "Jacobian" W' draws is the draws' image.
        first = apply_hypothesis(hypothesis, whole[:, 0], whole, labels, terms)
        if first is not None:
            keys = {"term": first.labels}
            if isinstance(hypothesis, str) and "=" in hypothesis:
                # an equation: evaluated at every draw at once
                whole = equation_draws(hypothesis, whole, terms)[None, :]
            else:
                whole = first.jacobian
        parts = [whole]
    # After the hypothesis is read: a bad one is said as such first.
    if null_value(hypothesis) != 0.0 or tests.equivalence is not None or tests.p_adjust:
        raise ValueError(
            "a fit with posterior draws (method 'mcmc') is summarized by the draws' medians and "
            "credible intervals: its null values, equivalence and p_adjust tests are z tests "
            "it does not make"
        )
    if not math.isinf(tests.df):
        raise ValueError("df: a fit with posterior draws makes no t tests")
    summaries = [_draws_summary(part, conf_level, tests) for part in parts]
    table: dict[str, Any] = dict(keys)
    for k, column in enumerate(("estimate", "ci_lower", "ci_upper")):
        table[column] = np.concatenate([summary[k] for summary in summaries])
    return pd.DataFrame(table)


def _draws_summary(
    draws: FloatArray, conf_level: float, tests: Tests
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Each row's median and equal-tailed interval of its draws, after the transform (NaN for a
    row with a draw that is not finite)."""
    if tests.transform is not None:
        draws = tests.transformed(draws.ravel()).reshape(draws.shape)
    tail = (1.0 - conf_level) / 2.0
    finite = np.isfinite(draws).all(axis=1)
    with np.errstate(invalid="ignore"):
        estimate = np.median(draws, axis=1)
        lower, upper = np.quantile(draws, [tail, 1.0 - tail], axis=1)
    return (
        np.where(finite, estimate, np.nan),
        np.where(finite, lower, np.nan),
        np.where(finite, upper, np.nan),
    )


def group_codes(keys: pd.DataFrame) -> tuple[NDArray[np.intp], pd.DataFrame]:
    """Each row's group among the distinct rows of ``keys`` (-1: a missing value) and the
    groups' values, sorted (categoricals in their categories' order)."""
    names = list(keys.columns)
    keys = keys.reset_index(drop=True)
    grouped = keys.groupby(names, sort=True, dropna=True, observed=True).ngroup()
    codes = np.asarray(grouped.fillna(-1), dtype=np.intp)
    values = keys.drop_duplicates().dropna().sort_values(names).reset_index(drop=True)
    return codes, values


def by_keys(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    missing = [b for b in by if b not in frame.columns]
    if missing:
        raise ValueError(
            f"by: column(s) {', '.join(map(repr, missing))} not in the data "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    return frame.loc[:, by]


def by_columns(by: Any) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    if isinstance(by, Sequence) and all(isinstance(b, str) for b in by) and len(by) > 0:
        if len(set(by)) != len(by):
            raise ValueError(f"by names a column twice: {list(by)!r}")
        return list(by)
    raise ValueError(f"by must be a column name or a list of them, got {by!r}")


def group_means(
    codes: NDArray[np.intp],
    n_groups: int,
    values: FloatArray,
    jacobian: FloatArray,
    weights: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Means of ``values`` and of the rows of ``jacobian`` within each group, weighted by
    ``weights`` (None: equally; rows with a code of -1 or a value that is not finite left
    out)."""
    use = np.isfinite(values) & (codes >= 0)
    members, counts = _membership(codes, n_groups, use, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (members @ np.where(use, values, 0.0)) / counts
        mean_jacobian = (members @ np.where(use[:, None], jacobian, 0.0)) / counts[:, None]
    return np.asarray(mean, dtype=np.float64), np.asarray(mean_jacobian, dtype=np.float64)


def effect_table(
    keys: dict[str, Any],
    estimate: FloatArray,
    jacobian: FloatArray,
    vcov: FloatArray,
    conf_level: float,
    tests: Tests,
    labelled: Sequence[str] | None = None,
    limit: LimitCovariance | None = None,
) -> pd.DataFrame:
    """The columns ``keys``, then estimate, std_error, z, p_value and the Wald interval of the
    estimates, or of the functions of them that ``hypothesis`` asks for (then one key, term,
    their labels); z against ``hypothesis`` when it is a single number (else 0); p-values
    adjusted by ``tests.p_adjust``; with ``tests.equivalence`` the one-sided tests and the
    TOST (z_noninf, z_nonsup, p_value_noninf, p_value_nonsup, p_value_equiv). SEs J V J'
    with J the estimates' ``jacobian`` in beta and V its covariance ``vcov``. ``labelled``:
    the keys that label the rows for hypothesis keywords (None: all but row). An estimate or
    variance that is not finite shows as NaN (never inf). ``limit``: a separated fit's
    covariance in the limit (FitOutput.vcov_limit), for the estimates that stay finite."""
    hypothesis = tests.hypothesis
    null = null_value(hypothesis)
    tested = apply_hypothesis(
        hypothesis,
        estimate,
        jacobian,
        _row_labels({k: keys[k] for k in (labelled if labelled is not None else keys)}),
        list(keys["term"]) if "term" in keys else None,
    )
    if tested is not None:
        keys = {"term": tested.labels}
        estimate, jacobian = tested.estimate, tested.jacobian
    variance = row_variances(jacobian, vcov, limit)
    # An estimate still moving along a separated fit's diverging path is not one.
    estimate = np.where(np.isfinite(estimate) & ~moving_rows(jacobian, limit), estimate, np.nan)
    variance = np.where(np.isfinite(variance), variance, np.nan)
    se = np.sqrt(np.clip(variance, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (estimate - null) / se
    z = np.where(np.isfinite(z), z, np.nan)
    q = tests.quantile(0.5 + conf_level / 2.0)
    table: dict[str, Any] = dict(keys)
    table["estimate"] = estimate
    table["std_error"] = se
    table["z"] = z
    p_value = 2.0 * tests.lower_tail(-np.abs(z))
    table["p_value"] = (
        p_value if tests.p_adjust is None else adjusted_p_values(p_value, tests.p_adjust)
    )
    table["ci_lower"] = estimate - q * se
    table["ci_upper"] = estimate + q * se
    bounds = tests.check()
    if bounds is not None:
        table.update(equivalence_tests(estimate, se, bounds, tests))
    if tests.p_adjust is not None:
        # as marginaleffects: no interval beside adjusted p-values (an unadjusted one would
        # not match them)
        del table["ci_lower"], table["ci_upper"]
    if tests.transform is not None:
        # as marginaleffects: estimate and limits transformed, the tests kept, the SE and z
        # (of the untransformed estimate) dropped
        for column in ("estimate", "ci_lower", "ci_upper"):
            if column in table:
                table[column] = tests.transformed(table[column])
        del table["std_error"], table["z"]
    return pd.DataFrame(table)


def _row_labels(keys: dict[str, Any]) -> list[str] | None:
    """Each row's label for hypothesis keywords, as marginaleffects makes it: the values of
    term, contrast and the by columns (those that vary, joined by ", "; in parentheses when
    one holds a minus); None when no such column."""
    columns = [k for k in keys if k != "row"]
    if not columns:
        return None
    texts = {k: [_text(v) for v in keys[k]] for k in columns}
    varying = [k for k in columns if len(set(texts[k])) > 1]
    labels = [
        ", ".join(parts) for parts in zip(*(texts[k] for k in varying or columns), strict=True)
    ]
    if any("-" in label for label in labels):
        labels = [f"({label})" for label in labels]
    return labels


def _text(value: Any) -> str:
    """A value as R pastes it: logical values TRUE/FALSE, numbers as as.character."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return r_number(float(value))
    return str(value)


@dataclass(frozen=True)
class Common:
    """What every function checks first (the result, type, re, conf_level, the rows and the by
    columns): the design, the level, the random blocks and the rows, and how predictions are
    made."""

    design: DesignInfo
    level: float
    blocks: tuple[int, ...]
    rows: Rows

    def predict(
        self, result: ResultBase, settings: Sequence[Setting], type: str
    ) -> list[Predicted]:
        return predict_settings(result, self.design, settings, self.rows.offset, self.blocks, type)


def common_inputs(
    result: Any,
    newdata: Any,
    by: list[str],
    wts: Any,
    type: str,
    re: Any,
    conf_level: float | None,
    offset: Any,
    what: str,
    tests: Tests | None = None,
) -> Common:
    design = _check(result, what)
    if tests is not None:
        tests.check()
    if type not in TYPES:
        raise ValueError(f"type must be 'response' or 'link', got {type!r}")
    level = result.conf_level if conf_level is None else fraction(conf_level, "conf_level")
    blocks = chosen_blocks(result.model, re)
    rows = _rows(result, design, newdata, offset, what, by)
    by_keys(rows.frame, by)  # a by column the data lack: said before anything is computed
    rows = dataclasses.replace(rows, weights=_weights(wts, rows.frame))
    return Common(design, level, blocks, rows)


def _weights(wts: Any, frame: pd.DataFrame) -> FloatArray | None:
    """wts as one finite non-negative weight per row (None: equal weights): a column of the
    data or the values themselves."""
    if wts is None:
        return None
    n = len(frame)
    if isinstance(wts, str):
        if wts not in frame.columns:
            raise ValueError(
                f"wts: column {wts!r} not in the data (columns: "
                f"{', '.join(map(str, frame.columns))})"
            )
        values = pd.to_numeric(frame[wts], errors="coerce").to_numpy(dtype=np.float64)
    else:
        try:
            values = np.asarray(wts, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"wts must be a column name or one number per row, got {wts!r}"
            ) from None
        if values.ndim != 1 or len(values) != n:
            raise ValueError(
                f"wts must have one value per row of the data ({n}), got shape {values.shape}"
            )
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("wts must be finite non-negative numbers (a missing value is not one)")
    if not np.any(values > 0):
        raise ValueError("wts: every weight is zero")
    return values


def effect_notes(result: ResultBase, type: str, blocks: tuple[int, ...]) -> tuple[str, ...]:
    scale = "probability" if type == "response" else "link (linear predictor)"
    random = (
        "random effects at their conditional modes" if blocks else "random effects excluded (zero)"
    )
    if result.posterior is not None:
        at = random.replace("conditional modes", "posterior means")
        return (
            f"Predictions on the {scale} scale, {at}.",
            f"Method {result.method!r}: medians and equal-tailed credible intervals of the "
            "estimates over the posterior draws of the fixed effects (the random effects at "
            "their posterior means: their draws are not kept).",
        )
    notes = [f"Predictions on the {scale} scale, {random}; delta-method SEs in the fixed effects."]
    method = result.method_object
    if method.posterior:
        notes.append(
            f"Method {result.method!r}: at the posterior means, with the posterior covariance "
            "of the fixed effects."
        )
    return tuple(notes)
