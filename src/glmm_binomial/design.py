"""From a parsed lme4 formula and a DataFrame to ModelData, and back again for new data.

This is the one place where data frames meet the model: it drops incomplete rows (as R's
na.omit), builds the response (0/1, two-level factor, proportion with weights, or cbind), asks
formulaic for the fixed-effects matrix and each random term's columns, and codes the grouping
factors. ``DesignInfo`` keeps what is needed to rebuild the same matrices for new data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
from formulaic import model_matrix
from numpy.typing import NDArray

from glmm_binomial.formula import ParsedFormula, RandomTerm, parse_formula, r_name
from glmm_binomial.model import LARGEST_VALUE, ModelData, RandomBlock

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class RandomSpec:
    """How to rebuild one random block for new data."""

    term: RandomTerm
    model_spec: Any
    levels: tuple[object, ...]
    level_keys: tuple[tuple[object, ...], ...]


@dataclass(frozen=True)
class DesignInfo:
    """What a fitted model remembers of its formula and data."""

    formula: ParsedFormula
    fixed_spec: Any
    random_specs: tuple[RandomSpec, ...]
    n_dropped: int
    response_name: str


def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    try:
        return pd.DataFrame(data)
    except Exception as exc:  # noqa: BLE001 - any failure means the argument is unusable
        raise ValueError(f"data must be a pandas DataFrame or convertible to one: {exc}") from None


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
    """A response expression: a column name, or arithmetic on columns (e.g. size - incidence)."""
    if expr in frame.columns:
        return frame[expr]
    try:
        value = frame.eval(expr, engine="python")
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


def _check_rank(x: FloatArray, names: Sequence[str]) -> None:
    if x.shape[1] == 0:
        return
    _, r, perm = scipy.linalg.qr(x, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    tol = diag[0] * max(x.shape) * np.finfo(float).eps if diag.size else 0.0
    rank = int(np.sum(diag > tol))
    if rank < x.shape[1]:
        aliased = [names[j] for j in perm[rank:]]
        raise ValueError(
            "fixed-effects design is rank deficient: "
            f"{', '.join(repr(a) for a in aliased)} aliased with other columns; remove them"
        )


def _matrix(expr: str, frame: pd.DataFrame, what: str) -> tuple[FloatArray, list[str], Any]:
    try:
        mm = model_matrix(expr, frame, na_action="ignore")
    except Exception as exc:  # noqa: BLE001 - formulaic raises many types; name the term
        raise ValueError(f"cannot build {what} '{expr}': {exc}") from None
    names = [r_name(str(c)) for c in mm.columns]
    values = np.asarray(mm, dtype=np.float64)
    return values, names, mm.model_spec


def _group_codes(
    frame: pd.DataFrame, group: tuple[str, ...]
) -> tuple[NDArray[np.intp], tuple[object, ...], tuple[tuple[object, ...], ...]]:
    """Integer codes of the interaction of the grouping variables, levels sorted as R would."""
    if len(group) == 1:
        # factorize(sort=True) already gives dense codes in sorted level order.
        single, uniques = pd.factorize(frame[group[0]], sort=True)
        labels = tuple(uniques)
        return single.astype(np.intp), labels, tuple((label,) for label in labels)
    codes = np.zeros(len(frame), dtype=np.intp)
    uniques_per_var = []
    for var in group:
        c, uniques = pd.factorize(frame[var], sort=True)
        uniques_per_var.append(list(uniques))
        codes = codes * len(uniques) + c
    present, inverse = np.unique(codes, return_inverse=True)
    keys = []
    for value in present:
        parts = []
        for uniques in reversed(uniques_per_var):
            value, digit = divmod(int(value), len(uniques))
            parts.append(uniques[digit])
        keys.append(tuple(reversed(parts)))
    levels = tuple(":".join(str(p) for p in k) for k in keys)
    return inverse.astype(np.intp), levels, tuple(keys)


def build_model(
    formula: str,
    data: Any,
    weights: Any = None,
    offset: Any = None,
) -> tuple[ModelData, DesignInfo]:
    """ModelData and DesignInfo for `formula` on `data` (rows with missing values dropped)."""
    if not isinstance(formula, str):
        raise ValueError("formula must be a string such as 'y ~ x + (1 | g)'")
    parsed = parse_formula(formula)
    frame = _as_frame(data)
    missing = [v for v in parsed.variables if v not in frame.columns]
    if missing:
        raise ValueError(
            f"formula '{formula}' uses column(s) not in data: {', '.join(map(repr, missing))}; "
            f"available: {', '.join(map(str, frame.columns))}"
        )
    if isinstance(weights, str):
        weights = (
            frame[weights] if weights in frame.columns else _missing_column("weights", weights)
        )
    if isinstance(offset, str):
        offset = frame[offset] if offset in frame.columns else _missing_column("offset", offset)
    w_all = _row_values("weights", weights, len(frame))
    o_all = _row_values("offset", offset, len(frame))
    if not parsed.random:
        raise ValueError(
            f"formula '{formula}' has no random-effect term such as (1 | group); "
            "for a plain logistic regression use a GLM"
        )

    used = frame.loc[:, list(parsed.variables)]
    complete = np.array(used.notna().all(axis=1), dtype=bool)
    for arr in (w_all, o_all):
        if arr is not None:
            complete &= ~np.isnan(arr)
    n_dropped = int(np.sum(~complete))
    sub = used.loc[complete].copy()
    if len(sub) < 2:
        raise ValueError(f"fewer than two complete rows in data for formula '{formula}'")
    w = None if w_all is None else w_all[complete]
    if w is not None and (np.any(~np.isfinite(w)) or np.any(w < 0)):
        raise ValueError("weights must be finite and non-negative")
    o = np.zeros(len(sub)) if o_all is None else o_all[complete]
    if not np.all(np.isfinite(o)):
        raise ValueError("offset must be finite")

    successes, trials = _response(parsed, sub, w)
    x, fixed_names, fixed_spec = _matrix(parsed.fixed, sub, "fixed-effects term")
    _check_finite(x, fixed_names, "fixed-effects", sub.index)
    _check_rank(x, fixed_names)

    blocks, specs = [], []
    for term in parsed.random:
        if term.expr == "1":
            # (1 | g), the commonest term: no need to ask formulaic for a column of ones.
            z, names, spec = np.ones((len(sub), 1)), ["(Intercept)"], None
        else:
            z, names, spec = _matrix(term.expr, sub, f"random-effect term {term.text}")
        if z.shape[1] == 0:
            raise ValueError(f"random-effect term {term.text} has no columns")
        _check_finite(z, names, f"random-effect term {term.text}", sub.index)
        codes, levels, keys = _group_codes(sub, term.group)
        group_name = ":".join(term.group)
        if len(levels) < 2:
            raise ValueError(
                f"grouping factor '{group_name}' in {term.text} has a single level; "
                "a random effect needs at least two groups"
            )
        blocks.append(RandomBlock(group_name, tuple(names), codes, levels, z))
        specs.append(RandomSpec(term, spec, levels, keys))

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
    )
    return model, info


def _missing_column(argument: str, name: str) -> Any:
    raise ValueError(f"{argument} names column '{name}', which is not in data")


def new_data_design(
    info: DesignInfo, newdata: Any, offset: Any = None
) -> tuple[FloatArray, FloatArray, list[tuple[NDArray[np.intp], FloatArray]], pd.Index]:
    """Fixed design, offset and, per random block, (codes, Z) for new data.

    Levels not seen in the fit get code -1 (their random effect is taken as zero)."""
    frame = _as_frame(newdata)
    needed = [
        v
        for v in info.formula.variables
        if v not in _response_variables(info) and v in _needed_variables(info)
    ]
    missing = [v for v in needed if v not in frame.columns]
    if missing:
        raise ValueError(f"newdata lacks column(s) {', '.join(map(repr, missing))}")
    try:
        x = np.asarray(info.fixed_spec.get_model_matrix(frame, na_action="raise"), dtype=float)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"cannot build the fixed-effects design for newdata: {exc}") from None
    o = _row_values("offset", offset, len(frame))
    o = np.zeros(len(frame)) if o is None else o
    random = []
    for spec in info.random_specs:
        try:
            if spec.model_spec is None:
                z = np.ones((len(frame), 1))
            else:
                matrix = spec.model_spec.get_model_matrix(frame, na_action="raise")
                z = np.asarray(matrix, dtype=float)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"cannot build {spec.term.text} for newdata: {exc}") from None
        # Level lookup by a pandas index (vectorized; -1 for levels not seen in the fit).
        group = spec.term.group
        if len(group) == 1:
            known = pd.Index([key[0] for key in spec.level_keys])
            codes = known.get_indexer(pd.Index(frame[group[0]].to_numpy(dtype=object)))
        else:
            known = pd.MultiIndex.from_tuples(spec.level_keys)
            wanted = pd.MultiIndex.from_arrays([frame[v].to_numpy(dtype=object) for v in group])
            codes = known.get_indexer(wanted)
        random.append((np.asarray(codes, dtype=np.intp), z))
    return x, o, random, frame.index


def _response_variables(info: DesignInfo) -> set[str]:
    response = info.formula.response
    texts = [response.successes] + ([response.failures] if response.failures else [])
    names: set[str] = set()
    for text in texts:
        names.update(t for t in _identifiers(text))
    return names


def _needed_variables(info: DesignInfo) -> set[str]:
    needed: set[str] = set()
    needed.update(getattr(info.fixed_spec, "required_variables", set()) or set())
    for spec in info.random_specs:
        needed.update(getattr(spec.model_spec, "required_variables", set()) or set())
        needed.update(spec.term.group)
    return {str(v) for v in needed}


def _identifiers(text: str) -> list[str]:
    import ast

    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return [text]
    return [node.id for node in ast.walk(tree) if isinstance(node, ast.Name)]


def formula_of(data: ModelData) -> str:
    """A readable lme4-style formula for ModelData built without one (spreadsheet input)."""
    fixed = " + ".join(data.fixed_names) or "1"
    random = " + ".join(f"({' + '.join(b.terms)} | {b.group})" for b in data.blocks)
    return f"y ~ {fixed} + {random}"
