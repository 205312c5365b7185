"""Data frames as the design stage reads them, with R's reading rules.

* Any narwhals-supported eager frame (polars, pyarrow, ...) becomes a pandas DataFrame; narwhals
  is the optional extra ``polars`` and is imported only when such a frame arrives.
* Object columns that hold only numbers become numeric columns (R reads such a column as numbers,
  not as a factor).
* Categorical columns lose the categories no row uses (R's ``droplevels`` after subsetting).
* Grouping labels are matched by R's ``as.character``: ``1``, ``1.0`` and ``"1"`` are one level.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = [
    "as_pandas",
    "drop_unused_categories",
    "factor_codes",
    "label_key",
    "label_keys",
    "match_codes",
    "numbers_as_numeric",
    "row_values",
]

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]

_NARWHALS_HINT = "pip install 'glmm-binomial[polars]'"


def as_pandas(data: Any, argument: str = "data") -> pd.DataFrame:
    """``data`` as a pandas DataFrame (the caller's object is never modified)."""
    if isinstance(data, pd.DataFrame):
        return data
    module = type(data).__module__.split(".")[0]
    if module not in {"builtins", "numpy", "pandas", "collections"}:
        return _from_narwhals(data, argument)
    try:
        return pd.DataFrame(data)
    except Exception as exc:  # noqa: BLE001 - any failure means the argument is unusable
        raise ValueError(
            f"{argument} must be a data frame (pandas, or polars and others with the 'polars' "
            f"extra) or convertible to a pandas DataFrame: {exc}"
        ) from None


def _from_narwhals(data: Any, argument: str) -> pd.DataFrame:
    try:
        import narwhals.stable.v1 as nw
    except ImportError:
        raise ValueError(
            f"{argument} is a {type(data).__module__}.{type(data).__name__}; frames other than "
            f"pandas need the optional dependency narwhals: {_NARWHALS_HINT}"
        ) from None
    try:
        frame = nw.from_native(data, eager_only=True)
    except TypeError:
        raise ValueError(
            f"{argument} of type {type(data).__name__} is not a data frame glmm-binomial can "
            "read; pass a pandas or polars DataFrame (collect lazy frames first)"
        ) from None
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        dtype = series.dtype
        if isinstance(dtype, nw.Enum):
            # An Enum has declared levels, like an R factor: keep their order.
            columns[name] = pd.Categorical(
                series.to_numpy().astype(object), categories=list(dtype.categories)
            )
        elif dtype == nw.Categorical or dtype == nw.String:
            # Plain strings: levels sorted as R sorts character columns made into factors.
            columns[name] = pd.array(series.to_numpy().astype(object), dtype=object)
        else:
            columns[name] = series.to_numpy()
    return pd.DataFrame(columns)


def row_values(name: str, values: Any, n: int) -> FloatArray | None:
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


def numbers_as_numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with each of ``columns`` of object dtype holding only numbers (or text that
    reads as numbers) made numeric. A copy is made only when a column changes; logical values
    and text labels are left alone."""
    changed: dict[str, pd.Series] = {}
    for name in columns:
        numbers = read_as_numbers(frame[name])
        if numbers is not None:
            changed[name] = numbers
    if not changed:
        return frame
    return frame.assign(**changed)


def read_as_numbers(series: pd.Series) -> pd.Series | None:
    """An object column holding only numbers (or text that reads as numbers) as numbers;
    None for any other column (logical values and text labels are labels)."""
    if series.dtype != object:
        return None
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in {"integer", "floating", "mixed-integer-float", "decimal"}:
        return pd.to_numeric(series)
    if kind in {"string", "mixed"}:
        # Text that reads as numbers everywhere ("18.4", "-5") is numbers, as R's read.csv
        # reads it; one label that is not a number keeps the column a factor. The plain
        # conversion fails fast on the first label; the checked one runs only if it passed.
        try:
            pd.to_numeric(series)
            return pd.to_numeric(series.map(_number_text, na_action="ignore"))
        except (ValueError, TypeError):
            return None
    return None


def _number_text(value: object) -> object:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("a logical value is not a number")
    if isinstance(value, str) and value.strip().lower() in {"nan", "inf", "-inf", "+inf", ""}:
        raise ValueError("not a number R would read")
    return value


def drop_unused_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with unused categories removed from its categorical columns (R's droplevels)."""
    changed = {
        name: frame[name].cat.remove_unused_categories()
        for name in frame.columns
        if isinstance(frame[name].dtype, pd.CategoricalDtype)
        and len(frame[name].cat.categories) > frame[name].nunique()
    }
    return frame.assign(**changed) if changed else frame


_WHOLE_LIMIT = 1e15  # whole numbers below this print as integers (R: 1e15 prints as 1e+15)


def label_key(value: object) -> str:
    """R's ``as.character`` of a label: ``1``, ``1.0`` and ``"1"`` all give ``"1"``."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if number.is_integer() and abs(number) < _WHOLE_LIMIT:
            return str(int(number))
        return format(number, ".15g")
    return str(value)


def label_keys(labels: Any) -> NDArray[np.object_]:
    """``label_key`` of each label as an object array of text, vectorized for integer, float
    and text arrays (only mixed object arrays are keyed one by one)."""
    values = labels if isinstance(labels, np.ndarray) else pd.Index(labels).to_numpy()
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values
    if values.dtype.kind in "iuU":
        return values.astype(str).astype(object)
    if values.dtype.kind == "f":
        integral = (np.abs(values) < _WHOLE_LIMIT) & (values == np.round(values))
        whole = np.where(integral, values, 0).astype(np.int64).astype(str)
        return np.where(integral, whole, np.char.mod("%.15g", values)).astype(object)
    keys = np.empty(len(values), dtype=object)
    keys[:] = [label_key(v) for v in values]
    return keys


def _sort_key(value: object) -> tuple[int, float, str]:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def factor_codes(series: pd.Series) -> tuple[IntArray, list[object], NDArray[np.object_]]:
    """Integer codes, levels and level keys of a grouping variable (no missing values).

    Levels are sorted as R sorts a factor's levels (category order for a categorical, numeric
    or text order otherwise); labels with the same ``label_key`` are one level (the first of
    them in that order names it)."""
    try:
        codes, uniques = pd.factorize(series, sort=True)
        labels = list(uniques)
    except TypeError:  # mixed types (numbers and text) cannot be compared: sort by key
        codes, uniques = pd.factorize(series, sort=False)
        order = sorted(range(len(uniques)), key=lambda j: _sort_key(uniques[j]))
        rank = np.empty(len(order), dtype=np.intp)
        rank[order] = np.arange(len(order))
        codes = rank[codes]
        labels = [uniques[j] for j in order]
    values = pd.Index(labels).to_numpy()
    keys = label_keys(values)
    text = values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string"
    if values.dtype.kind in "iuU" or text:
        # Distinct integers, or distinct text labels, have distinct keys: nothing to merge.
        return np.asarray(codes, dtype=np.intp), labels, keys
    # Hash-based: key codes are in order of first appearance, i.e. in level order.
    key_codes, key_uniques = pd.factorize(keys)
    if len(key_uniques) == len(keys):
        return np.asarray(codes, dtype=np.intp), labels, keys
    _, first = np.unique(key_codes, return_index=True)
    levels = [labels[j] for j in first]
    return np.asarray(key_codes, dtype=np.intp)[codes], levels, keys[first]


def match_codes(series: pd.Series, keys: Any) -> tuple[IntArray, list[object]]:
    """Codes of ``series`` in a fit's levels (given by their keys); -1 and the new labels for
    labels the fit has not seen."""
    codes, uniques = pd.factorize(series, sort=False)
    found = pd.Index(np.asarray(keys, dtype=object)).get_indexer(label_keys(uniques))
    found = np.asarray(found, dtype=np.intp)
    new = [uniques[int(j)] for j in np.flatnonzero(found < 0)]
    out = np.full(len(codes), -1, dtype=np.intp)
    present = codes >= 0
    out[present] = found[codes[present]]
    return out, new
