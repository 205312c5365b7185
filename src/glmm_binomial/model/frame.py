"""Data frames as the design stage reads them: one reader policy for every input path.

Whatever delivers the table (pandas of any dtype, polars or pyarrow through narwhals, the CLI's
CSV, .xlsx and Parquet readers, Dask partitions, new data for prediction), each column the
model reads values from is read by one rule, R's (``type.convert`` as ``read.csv`` applies it,
then ``model.matrix``):

* a categorical column is a factor, whatever its categories (R: a factor stays a factor; a
  categorical of numbers is not made numeric);
* a logical column (bool of any dtype, or text TRUE/FALSE, True/False, true/false) is a factor
  with levels FALSE and TRUE where the formula uses it as a term (R names its column
  ``xTRUE``), and R's logical values elsewhere (the response; inside an expression 1/0 in
  arithmetic, and a FALSE/TRUE factor where the expression's value is logical: ``I(x)TRUE``);
* any other column is numeric when every non-missing value is a number or text that reads as
  one (``"18.44"``, ``" -5 "``, ``"1e3"``; blank text, ``"NA"`` and ``"NaN"`` are missing), in
  whatever dtype it arrives: object, pandas' ``str`` and ``"string"``, Arrow strings, nullable
  numbers. The file readers apply the file's decimal convention before this (a CSV read with
  ``decimal=","``); in memory a number is written with a decimal point, as R's as.numeric reads
  it;
* a column of dates or times (datetime64 of any zone, timedelta64, periods, or Python's date,
  time and datetime objects as a spreadsheet's date cells arrive) is refused with an error that
  names it: R reads a Date as days and a POSIXct as seconds since 1970 (Excel: days since 1899),
  scales nobody means, and each distinct time as a level is no better; the caller gives a
  number (days since a start) or text. As a grouping factor only, its values are labels;
* otherwise it is a factor whose labels are R's ``as.character`` of the values
  (``label_key``: ``1``, ``1.0`` and ``"1"`` are one level), levels sorted as text.

``read_columns`` decides and converts (``ColumnTraits`` are the per-column facts the decision
needs, merged over Dask partitions with ``&``); ``read_table`` does the same for a fit's own
columns into a ``ColumnTable``, which the design stage reads as it would a DataFrame, each column
taken from pandas once; ``ColumnReading`` records the decision and the
factor's levels so that new data (and every Dask partition) is read the same way by
``read_like``, with a ValueError naming the column, row and value that does not fit.
Grouping labels are matched by the same ``label_key`` everywhere (``factor_codes``,
``match_codes``). Unused categories are dropped after the rows are chosen (R's ``droplevels``).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = [
    "ColumnKind",
    "ColumnTable",
    "ColumnReading",
    "ColumnTraits",
    "LOGICAL_LEVELS",
    "Table",
    "as_frame",
    "as_pandas",
    "check_unique_columns",
    "column_kind",
    "column_readings",
    "column_traits",
    "complete_rows",
    "decimal_comma_label",
    "drop_unused_categories",
    "factor_codes",
    "factor_levels",
    "is_logical_dtype",
    "label_key",
    "label_keys",
    "logical_text",
    "match_codes",
    "missing_counts",
    "new_levels_message",
    "numbers_as_numeric",
    "read_as_numbers",
    "read_columns",
    "read_factor_labels",
    "read_like",
    "read_series",
    "read_table",
    "row_values",
    "spelled_otherwise",
    "stray_text_labels",
    "text_number",
    "too_few_rows_message",
]

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]

ColumnKind = Literal["number", "logical", "factor", "logical_factor"]
"""How a column is read (see ColumnReading)."""

_NARWHALS_HINT = "pip install 'glmm-binomial[polars]'"


def as_pandas(data: Any, argument: str = "data") -> pd.DataFrame:
    """``data`` as a pandas DataFrame (the caller's object is never modified)."""
    if isinstance(data, pd.DataFrame):
        if isinstance(data.columns, pd.MultiIndex):
            # A formula names one column by one name; pandas would hand back a frame.
            raise ValueError(
                f"{argument} has columns on {data.columns.nlevels} levels (a MultiIndex); give "
                "it one name a column (e.g. data.columns = ['_'.join(map(str, c)) for c in "
                "data.columns])"
            )
        return data
    module = type(data).__module__.split(".")[0]
    if module not in {"builtins", "numpy", "pandas", "collections"}:
        return _from_narwhals(data, argument)
    if isinstance(data, Mapping) and data and all(np.ndim(v) == 0 for v in data.values()):
        # {"age": 30, "urban": "Y"}: one row (pandas wants an index for scalars alone).
        return pd.DataFrame([dict(data)])
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
            # The series' categories (narwhals' stable v1 Enum dtype has lost .categories).
            columns[name] = pd.Categorical(
                series.to_numpy().astype(object),
                categories=series.cat.get_categories().to_list(),
            )
        elif dtype == nw.Categorical:
            # A factor (R: a factor stays a factor), levels sorted as R's factor() sorts text.
            columns[name] = pd.Categorical(series.to_numpy().astype(object))
        elif dtype == nw.String:
            # Text: the reader policy decides (numbers, logical or labels), as for pandas.
            columns[name] = pd.array(series.to_numpy().astype(object), dtype=object)
        else:
            columns[name] = series.to_numpy()
    return pd.DataFrame(columns)


def check_unique_columns(frame: pd.DataFrame, names: Iterable[str], argument: str) -> None:
    """Refuse a frame in which a column the model reads appears more than once: which of them
    is meant cannot be told (R's data.frame would have renamed the copies ``x.1``, ...).
    Duplicated columns the model does not read are left alone."""
    if frame.columns.is_unique:
        return
    duplicated = set(frame.columns[frame.columns.duplicated()])
    clashing = sorted({str(n) for n in names if n in duplicated})
    if clashing:
        raise ValueError(
            f"{argument} has more than one column named {', '.join(map(repr, clashing))}, "
            "which the model uses; rename or drop the copies (for instance "
            f"{argument}.loc[:, ~{argument}.columns.duplicated()])"
        )


def row_values(name: str, values: Any, n: int, index: pd.Index | None = None) -> FloatArray | None:
    """An optional per-row numeric argument (weights, offset) as a float array, or None.

    A pandas Series is matched to the data's rows by its index when the data is a pandas
    DataFrame (``index``): used as it is when the labels are the data's in the same order,
    reordered when they are the same set in another order, refused otherwise (a partial or
    different index, or duplicated labels). With data that has no index (``index`` None) a
    Series must carry the default index 0..n-1. Anything else is taken in row order."""
    if values is None:
        return None
    if isinstance(values, pd.Series):
        values = _aligned(name, values, n, index)
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have one value per row of data ({n}), got shape {arr.shape}")
    try:
        return np.asarray(pd.to_numeric(pd.Series(arr), errors="raise"), dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be numeric") from None


def _aligned(name: str, values: pd.Series, n: int, index: pd.Index | None) -> pd.Series:
    own = values.index
    if index is None:
        if own.equals(pd.RangeIndex(n)):
            return values
        raise ValueError(
            f"{name} is a pandas Series with its own index, but the data is not a pandas "
            "DataFrame, so there is no index to match it on; pass the values in the data's row "
            f"order ({name}.to_numpy())"
        )
    if own.equals(index):
        return values
    problem = ""
    if not own.is_unique or not index.is_unique:
        which = name if not own.is_unique else "data"
        problem = f"{which}'s index has duplicated labels"
    else:
        extra = own.difference(index)
        lacking = index.difference(own)
        if len(extra):
            problem = f"labels {_some(extra)} of {name} are not in data's index"
        elif len(lacking):
            problem = f"data's rows {_some(lacking)} have no value in {name}"
    if problem:
        raise ValueError(
            f"{name} is a pandas Series whose index does not match data's index ({problem}); "
            f"give it data's index, or pass the values in data's row order ({name}.to_numpy())"
        )
    # The same labels in another order: each row takes the value with its label.
    return values.reindex(index)


def _some(labels: pd.Index, shown: int = 3) -> str:
    text = ", ".join(repr(v) for v in labels[:shown].tolist())
    return text + (f" and {len(labels) - shown} more" if len(labels) > shown else "")


# --- the reader policy --------------------------------------------------------------------------

_LOGICAL_TEXT = {"TRUE": True, "True": True, "true": True, "FALSE": False, "False": False,
                 "false": False}  # fmt: skip
"""Text R's type.convert reads as logical (its single letters T and F are left as labels)."""

_MISSING_NUMBER_TEXT = frozenset({"", "NA", "NaN", "nan"})
"""Text that is a missing value in a column of numbers (R: blank fields and "NA" are NA, and
as.numeric("NaN") is NaN, which na.omit drops)."""

LOGICAL_LEVELS = ("FALSE", "TRUE")
"""The levels of a logical column read as a factor (R's, so its column is named ``xTRUE``)."""


@dataclass(frozen=True)
class ColumnTraits:
    """What a column's values allow, whatever its dtype: ``categorical`` (a categorical dtype),
    ``logical`` (every non-missing value is logical), ``numbers`` (every non-missing value is a
    number or text of one; logical values are not). A column without values allows both.
    The traits of the pieces of a column (Dask partitions) combine with ``&``."""

    categorical: bool
    logical: bool
    numbers: bool
    dates: bool = False
    """Its values are dates or times (a dtype of them, or every non-missing value one)."""

    def __and__(self, other: ColumnTraits) -> ColumnTraits:
        return ColumnTraits(
            self.categorical or other.categorical,
            self.logical and other.logical,
            self.numbers and other.numbers,
            self.dates or other.dates,
        )


@dataclass(frozen=True)
class ColumnReading:
    """How the fit read one column: its ``kind`` and, for a factor, its levels (those of the
    rows fitted, R's droplevels). New data and Dask partitions are read to match.

    Kinds: "number"; "logical" (R's logical values, whatever their dtype); "factor";
    "logical_factor" (a logical column used as a term: levels FALSE and TRUE, whatever spelling
    the values arrive in)."""

    name: str
    kind: ColumnKind
    levels: tuple[object, ...] = ()


def is_logical_dtype(dtype: Any) -> bool:
    """Whether a dtype holds logical values (numpy's bool, pandas' boolean; not a categorical
    of them)."""
    return pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)


def _present(series: pd.Series) -> NDArray[np.object_]:
    """The distinct non-missing values of a column, as an object array."""
    uniques = pd.unique(series.to_numpy(dtype=object))
    return np.asarray(uniques[~pd.isna(uniques)], dtype=object)


def _logical_value(value: object) -> bool | None:
    """A logical value (bool, or text TRUE/True/true/FALSE/...) as a bool; None otherwise."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        return _LOGICAL_TEXT.get(value.strip())
    return None


_DATE_KINDS = frozenset(
    {"datetime64", "datetime", "date", "time", "timedelta64", "timedelta", "period"}
)
"""pandas.api.types.infer_dtype kinds of object arrays of dates or times."""


def _is_date_dtype(dtype: Any) -> bool:
    return (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    )


_NO_LOGICAL_KINDS = frozenset({"string", "empty", "integer", "floating", "decimal", "complex"})
"""pandas.api.types.infer_dtype kinds of object arrays that cannot hold a logical value."""


def _numbers_of(values: NDArray[np.object_]) -> NDArray[np.float64] | None:
    """``values`` (an object array; missing values allowed) as float64 when every non-missing
    value is a number or text of one, blank text and "NA"/"NaN" counting as missing; None
    otherwise. Logical values are not numbers."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in _NO_LOGICAL_KINDS and any(isinstance(v, (bool, np.bool_)) for v in values):
        return None
    try:  # one pass when every value reads (labels fail at the first one)
        return np.asarray(pd.to_numeric(values, errors="raise"), dtype=np.float64)
    except (TypeError, ValueError):
        pass
    try:
        numbers = np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)
    except (TypeError, ValueError):
        return None
    failed = values[np.isnan(numbers) & ~pd.isna(values)]
    if all(isinstance(v, str) and v.strip() in _MISSING_NUMBER_TEXT for v in failed):
        return numbers
    return None


def _all_numbers(values: NDArray[np.object_]) -> bool:
    return _numbers_of(values) is not None


def text_number(text: str) -> float | None:
    """A text cell as the number it reads as under the reader policy (``" 18.44 "``, ``"1e3"``),
    or None (not a number, or a missing value such as blank text or "NA")."""
    numbers = _numbers_of(np.array([text], dtype=object))
    return None if numbers is None or np.isnan(numbers[0]) else float(numbers[0])


def logical_text(text: str) -> bool | None:
    """A text cell as the logical value it reads as (TRUE/True/true, FALSE/...), or None."""
    return _LOGICAL_TEXT.get(text.strip())


def column_traits(series: pd.Series) -> ColumnTraits:
    """The traits of a column (see ``ColumnTraits``), decided on its distinct values."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return ColumnTraits(categorical=True, logical=False, numbers=False)
    if is_logical_dtype(dtype):
        return ColumnTraits(categorical=False, logical=True, numbers=False)
    if pd.api.types.is_numeric_dtype(dtype):
        return ColumnTraits(categorical=False, logical=False, numbers=True)
    if _is_date_dtype(dtype):
        return ColumnTraits(categorical=False, logical=False, numbers=False, dates=True)
    present = _present(series)
    if len(present) and pd.api.types.infer_dtype(present, skipna=True) in _DATE_KINDS:
        return ColumnTraits(categorical=False, logical=False, numbers=False, dates=True)
    logical = all(_logical_value(v) is not None for v in present)
    numbers = len(present) == 0 or (not logical and _all_numbers(present))
    return ColumnTraits(categorical=False, logical=logical, numbers=numbers)


def column_kind(traits: ColumnTraits, logical_as_factor: bool, name: str) -> ColumnKind:
    """The kind column ``name`` with these traits is read as: a categorical is a factor; a
    logical column a factor where the formula uses it as a term (``logical_as_factor``), else
    0/1; a column of numbers numeric (one without values too); dates or times a ValueError
    (module docstring); anything else a factor."""
    if traits.categorical:
        return "factor"
    if traits.dates:
        raise ValueError(
            f"column {name!r} holds dates or times, which the model reads neither as numbers "
            "nor as labels: for a trend give a number (e.g. days since a start; in pandas "
            f"(d[{name!r}] - d[{name!r}].min()).dt.days), for a factor give text (e.g. the "
            "date as year-month); as a grouping factor alone, (1 | column), dates are labels"
        )
    if traits.numbers:
        return "number"
    if traits.logical:
        return "logical_factor" if logical_as_factor else "logical"
    return "factor"


def _first_misfit(series: pd.Series, fits: Any) -> tuple[object, object] | None:
    values = series.to_numpy(dtype=object)
    for position, value in enumerate(values):
        if not pd.isna(value) and not fits(value):
            return series.index[position], value
    return None


def _misfit_error(series: pd.Series, name: str, argument: str, what: str, fits: Any) -> ValueError:
    found = _first_misfit(series, fits)
    where = "" if found is None else f": row {found[0]!r} has {found[1]!r}"
    return ValueError(f"{argument} column '{name}' must hold {what}, as the fit read it{where}")


def _as_number(series: pd.Series, name: str, argument: str) -> pd.Series:
    dtype = series.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not is_logical_dtype(dtype):
        if isinstance(dtype, np.dtype):
            return series  # already numbers: no copy
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.Series(values, index=series.index, name=series.name)
    if not isinstance(dtype, pd.CategoricalDtype) and not is_logical_dtype(dtype):
        numbers = _numbers_of(series.to_numpy(dtype=object))
        if numbers is not None:
            return pd.Series(numbers, index=series.index, name=series.name)
    raise _misfit_error(
        series, name, argument, "numbers", lambda v: _all_numbers(np.array([v], dtype=object))
    )


def _as_logical(series: pd.Series, name: str, argument: str) -> pd.Series:
    """A logical column as logical values whatever its dtype (numpy bool, pandas boolean,
    text TRUE/FALSE): numpy bool, or pandas' nullable boolean where a value is missing (those
    rows are dropped before the design is built). R's logical either way: 1/0 in arithmetic,
    a FALSE/TRUE factor as an expression's value (I(b)TRUE), TRUE/FALSE as a response."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind == "b":
        return series
    values = series.to_numpy(dtype=object)
    missing = pd.isna(values)
    logical = [_logical_value(v) for v in values[~missing]]
    if any(v is None for v in logical):
        raise _misfit_error(
            series, name, argument, "logical values (TRUE/FALSE)",
            lambda v: _logical_value(v) is not None,
        )  # fmt: skip
    if not missing.any():
        return pd.Series(np.asarray(logical, dtype=bool), index=series.index, name=series.name)
    out = pd.array([None] * len(values), dtype="boolean")
    out[~missing] = np.asarray(logical, dtype=bool)
    return pd.Series(out, index=series.index, name=series.name)


def _keys(uniques: Any, logical: bool) -> NDArray[np.object_]:
    values = np.asarray(uniques, dtype=object)
    if not logical:
        return label_keys(values)
    flags = [_logical_value(v) for v in values]
    return np.array([None if f is None else LOGICAL_LEVELS[int(f)] for f in flags], dtype=object)


def _as_factor(series: pd.Series, name: str, argument: str, logical: bool) -> pd.Series:
    """A column as a Categorical of its label keys (R's as.character; FALSE/TRUE for a logical
    column), levels sorted as text; a categorical column stays as it is."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series
    codes, uniques = pd.factorize(series)
    keys = _keys(uniques, logical)
    if logical and any(k is None for k in keys):
        raise _misfit_error(
            series, name, argument, "logical values (TRUE/FALSE)",
            lambda v: _logical_value(v) is not None,
        )  # fmt: skip
    categories = np.unique(keys) if len(keys) else np.array([], dtype=object)
    position = np.searchsorted(categories, keys) if len(keys) else np.zeros(0, dtype=np.intp)
    coded = np.where(codes >= 0, position[np.maximum(codes, 0)] if len(keys) else -1, -1)
    factor = pd.Categorical.from_codes(coded, categories=pd.Index(categories, dtype=object))
    return pd.Series(factor, index=series.index, name=series.name)


def factor_levels(values: Any, logical: bool = False) -> tuple[object, ...]:
    """The levels ``read_like`` gives a factor column read from values (not a categorical)
    whose distinct non-missing values are ``values`` (any order, repeats allowed): their label
    keys (FALSE/TRUE for a logical column) sorted as text. A Dask fit finds them from the
    values its partitions hold."""
    present = np.asarray(pd.unique(np.asarray(values, dtype=object)), dtype=object)
    present = present[~pd.isna(present)]
    keys = _keys(present, logical)
    if logical and any(k is None for k in keys):
        raise ValueError("a logical column holds a value that is not TRUE or FALSE")
    return tuple(np.unique(keys).tolist()) if len(keys) else ()


def _in_levels(series: pd.Series, reading: ColumnReading, argument: str) -> pd.Series:
    levels = list(reading.levels)
    if reading.kind == "logical_factor":
        series = _as_factor(series, reading.name, argument, logical=True)
    codes, new = match_codes(series, label_keys(np.asarray(levels, dtype=object)))
    if new:
        raise ValueError(new_levels_message(argument, reading.name, new, levels))
    categories = pd.Index(levels, dtype=object) if levels else pd.Index([], dtype=object)
    if isinstance(series.dtype, pd.CategoricalDtype) and list(series.cat.categories) == levels:
        return series
    factor = pd.Categorical.from_codes(codes, categories=categories)
    return pd.Series(factor, index=series.index, name=series.name)


def new_levels_message(
    argument: str, name: str, new: Sequence[object], levels: Sequence[object]
) -> str:
    """The message for factor levels that new data have and the fit had not (lme4 refuses
    them)."""
    shown = ", ".join(repr(v) if isinstance(v, str) else label_key(v) for v in new[:5])
    shown += " ..." if len(new) > 5 else ""
    listed = ", ".join(map(str, levels[:20])) + (" ..." if len(levels) > 20 else "")
    return (
        f"{argument}: factor '{name}' has new level(s) {shown} not in the fit "
        f"(levels: {listed}); predictions need levels seen in the fit"
    )


def read_series(series: pd.Series, reading: ColumnReading, argument: str) -> pd.Series:
    """One column read as ``reading`` says (read_like's rule for each column); the series
    itself when it already is what the reading asks for."""
    if reading.kind == "number":
        return _as_number(series, reading.name, argument)
    if reading.kind == "logical":
        return _as_logical(series, reading.name, argument)
    if reading.levels:
        return _in_levels(series, reading, argument)
    return _as_factor(series, reading.name, argument, reading.kind == "logical_factor")


def read_like(
    frame: pd.DataFrame, readings: Iterable[ColumnReading], argument: str = "newdata"
) -> pd.DataFrame:
    """``frame`` with the columns in ``readings`` read as the fit read them: numbers (a value
    that is not one raises a ValueError naming the column, row and value), logical values, or
    a factor, coded in the fit's levels when the reading has them (a level the fit has not seen
    raises a ValueError naming it, as lme4 does). Columns ``frame`` lacks are skipped (the
    caller says which it needs). A copy is made only when a column changes."""
    changed: dict[str, pd.Series] = {}
    for reading in readings:
        if reading.name not in frame.columns:
            continue
        series = frame[reading.name]
        out = read_series(series, reading, argument)
        if out is not series:
            changed[reading.name] = out
    return frame.assign(**changed) if changed else frame


def read_columns(
    frame: pd.DataFrame, names: Sequence[str], factor_terms: Collection[str] = ()
) -> tuple[pd.DataFrame, dict[str, ColumnKind]]:
    """``frame`` with each of ``names`` read by the reader policy (module docstring), and the
    kind each was read as. ``factor_terms``: the columns the formula uses as terms of their own
    (``x``, ``factor(x)``), where a logical column is a factor. The caller's frame is never
    modified."""
    kinds = {
        name: column_kind(column_traits(frame[name]), name in factor_terms, name) for name in names
    }
    return read_like(frame, [ColumnReading(n, k) for n, k in kinds.items()], "data"), kinds


class ColumnTable:
    """Named columns (pandas Series sharing one index, in order) that the design stage reads
    as it reads a DataFrame: ``table[name]``, ``name in table.columns``, ``len(table)``,
    ``table.index``, ``table.shape``. Each column is taken from pandas once (a DataFrame's
    column access costs tens of microseconds each time: on a small fit the design's dozens of
    reads were a fifth of its time); ``frame`` builds the DataFrame only for what needs one
    (formulaic). Read-only: the methods return new tables."""

    def __init__(self, series: dict[str, pd.Series], index: pd.Index) -> None:
        self._series = series
        self.index = index
        self.columns: tuple[str, ...] = tuple(series)
        self._frame: pd.DataFrame | None = None

    def __getitem__(self, name: str) -> pd.Series:
        return self._series[name]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.index), len(self.columns)

    def items(self) -> Iterable[tuple[str, pd.Series]]:
        return self._series.items()

    @property
    def frame(self) -> pd.DataFrame:
        """The columns as a pandas DataFrame (made on first use)."""
        if self._frame is None:
            # The arrays, not the Series: no alignment on the index (which may repeat labels).
            arrays = {name: series.array for name, series in self._series.items()}
            self._frame = pd.DataFrame(arrays, index=self.index, copy=False)
        return self._frame

    def with_columns(self, changed: dict[str, pd.Series]) -> ColumnTable:
        """The table with some columns replaced (same rows)."""
        return ColumnTable({**self._series, **changed}, self.index)

    def rows(self, mask: NDArray[np.bool_]) -> ColumnTable:
        """The rows where mask is True."""
        return ColumnTable({n: s[mask] for n, s in self._series.items()}, self.index[mask])


Table = pd.DataFrame | ColumnTable
"""What the design stage reads columns from."""


def as_frame(table: Table) -> pd.DataFrame:
    """A pandas DataFrame of ``table`` (itself when it is one)."""
    return table.frame if isinstance(table, ColumnTable) else table


def read_table(
    frame: pd.DataFrame,
    names: Sequence[str],
    read: Sequence[str],
    factor_terms: Collection[str] = (),
) -> tuple[ColumnTable, dict[str, ColumnKind]]:
    """The model's own columns: ``names`` (unique, present) of ``frame`` in that order as a
    ColumnTable (each column taken from ``frame`` once), those in ``read`` read by the reader
    policy as read_columns reads them, and the kind each of ``read`` was read as (in the
    order of ``read``)."""
    series = {name: frame[name] for name in names}
    kinds: dict[str, ColumnKind] = {}
    for name in read:
        column = series[name]
        kinds[name] = column_kind(column_traits(column), name in factor_terms, name)
        series[name] = read_series(column, ColumnReading(name, kinds[name]), "data")
    return ColumnTable(series, frame.index), kinds


_DECIMAL_COMMA_RE = re.compile(r"\s*[-+]?\d+(,\d+)?\s*")


def decimal_comma_label(labels: Sequence[object]) -> str | None:
    """One label written with a decimal comma when every one of `labels` reads as a number so
    written ("18,44"; whole numbers allowed, at least one comma); None otherwise."""
    texts = [str(label) for label in labels]
    with_comma = [text for text in texts if "," in text]
    if with_comma and all(_DECIMAL_COMMA_RE.fullmatch(text) for text in texts):
        return with_comma[0].strip()
    return None


STRAY_TEXT_MIN_NUMBERS = 10
"""stray_text_labels: a factor is looked at when at least this many of its labels read as
numbers (a factor of a few numeric codes and some words is a factor)."""
STRAY_TEXT_MAX = 2
"""stray_text_labels: and when at most this many of its labels do not."""


def stray_text_labels(labels: Sequence[object]) -> list[str]:
    """The labels that are not numbers when the others are (at least STRAY_TEXT_MIN_NUMBERS
    numbers, at most STRAY_TEXT_MAX others: a typo, a "?" or "." for a missing value); []
    otherwise."""
    texts = np.array([str(label) for label in labels], dtype=object)
    numbers = np.asarray(pd.to_numeric(texts, errors="coerce"), dtype=np.float64)
    stray = texts[np.isnan(numbers)]
    if len(texts) - len(stray) >= STRAY_TEXT_MIN_NUMBERS and 0 < len(stray) <= STRAY_TEXT_MAX:
        return [str(text) for text in stray]
    return []


def read_factor_labels(
    frame: pd.DataFrame, table: Table, kinds: dict[str, ColumnKind]
) -> Iterator[tuple[str, pd.Series, list[object]]]:
    """The columns of `table` read as factors that `frame` did not give as categoricals
    (name, read column, its labels): those whose text may have been meant as numbers
    (decimal_comma_label, stray_text_labels)."""
    for name, kind in kinds.items():
        if kind != "factor" or isinstance(frame[name].dtype, pd.CategoricalDtype):
            continue
        column = table[name]
        dtype = column.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            yield name, column, list(dtype.categories)


def spelled_otherwise(
    missing: Iterable[str], columns: Iterable[object], argument: str = "data"
) -> str:
    """For names a formula uses that a frame lacks, the frame's columns that are those names
    spelled otherwise (a header read with its byte-order mark, surrounding spaces, another
    letter case: "\ufeffuse", " age", "Age"), as a sentence for the error; "" when none."""

    def bare(name: str) -> str:
        return name.strip().strip("\ufeff\u200b\u200c\u200d\u2060").strip().casefold()

    missing = list(missing)
    columns = list(columns)
    # A column labelled by a number (0, from numpy or header=None) is not the name "0".
    numbered = [
        name
        for name in missing
        for column in columns
        if not isinstance(column, str) and str(column) == name
    ]
    labels = [str(c) for c in columns]
    near = {
        name: label
        for name in missing
        for label in labels
        if label != name and bare(label) == bare(name)
    }
    parts = []
    if numbered:
        shown = ", ".join(repr(name) for name in numbered)
        parts.append(
            f"{shown} {'is a column' if len(numbered) == 1 else 'are columns'} of {argument} "
            "labelled by a number, not by text: name the columns with text "
            f"({argument}.columns = {argument}.columns.astype(str))"
        )
    if near:
        pairs = ", ".join(f"{name!r} is {label!r}" for name, label in near.items())
        parts.append(
            f"{pairs} in {argument} (a byte-order mark, spaces or letter case: rename the column, "
            "or read the file with encoding='utf-8-sig' and skipinitialspace=True)"
        )
    return "; ".join(parts)


def complete_rows(table: ColumnTable) -> NDArray[np.bool_]:
    """Whether each row of ``table`` has no missing value (``notna().all(axis=1)``), column by
    column on the arrays."""
    complete = np.ones(len(table), dtype=bool)
    for _, series in table.items():
        present = present_values(series)
        if present is not None:
            complete &= present
    return complete


def present_values(series: pd.Series) -> NDArray[np.bool_] | None:
    """Whether each value of a read column is present (None: all are): a numpy integer or
    bool column has no missing value, a float column its NaN, a categorical its code -1."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return None
    if isinstance(dtype, pd.CategoricalDtype):
        return np.asarray(series.array.codes) >= 0
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return ~np.isnan(series.to_numpy())
    return np.asarray(series.notna(), dtype=bool)


def too_few_rows_message(formula: str, rows: int, missing: dict[str, int]) -> str:
    """The refusal of data with fewer than two complete rows, with the number of missing
    values of each column that has any (``missing``) among its ``rows`` rows."""
    where = ", ".join(f"{name} ({count})" for name, count in missing.items())
    return f"fewer than two complete rows in data for formula '{formula}'" + (
        f": of {rows} rows, missing values in {where}" if where else ""
    )


def missing_counts(table: ColumnTable) -> dict[str, int]:
    """The number of missing values of each column of ``table`` that has any."""
    counts = {}
    for name, series in table.items():
        present = present_values(series)
        missing = 0 if present is None else int(np.count_nonzero(~present))
        if missing:
            counts[str(name)] = missing
    return counts


def column_readings(table: Table, kinds: dict[str, ColumnKind]) -> tuple[ColumnReading, ...]:
    """The fit's readings (``kinds`` from read_columns), each factor with its levels as
    ``table`` (the rows fitted, unused categories dropped) has them."""
    return tuple(
        ColumnReading(
            name, kind, _categories(table[name]) if kind in ("factor", "logical_factor") else ()
        )
        for name, kind in kinds.items()
    )


def _categories(series: pd.Series) -> tuple[object, ...]:
    dtype = series.dtype
    assert isinstance(dtype, pd.CategoricalDtype)
    return category_labels(dtype)


def category_labels(dtype: pd.CategoricalDtype) -> tuple[object, ...]:
    """A categorical's categories as Python values (Index.tolist()'s), as the fit's readings,
    its variable summaries and the direct design's plan keys record them."""
    return tuple(dtype.categories.tolist())


def read_as_numbers(series: pd.Series) -> pd.Series | None:
    """A column (of any dtype but categorical or logical) whose non-missing values are all
    numbers or text of numbers, as numbers (float64 unless it already was a numpy numeric
    column); None for any other column."""
    traits = column_traits(series)
    if traits.categorical or not traits.numbers:
        return None
    return _as_number(series, str(series.name), "data")


def numbers_as_numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with each of ``columns`` that holds only numbers (or text of numbers) as
    numbers; a copy is made only when a column changes. Logical values, text labels and
    categoricals are left alone."""
    changed: dict[str, pd.Series] = {}
    for name in columns:
        numbers = read_as_numbers(frame[name])
        if numbers is not None and numbers is not frame[name]:
            changed[name] = numbers
    return frame.assign(**changed) if changed else frame


def drop_unused_categories(table: Table) -> Table:
    """``table`` with unused categories removed from its categorical columns (R's
    droplevels)."""
    changed: dict[Any, pd.Series] = {}
    for label, series in table.items():
        dtype = series.dtype
        if not isinstance(dtype, pd.CategoricalDtype):
            continue
        # A category is unused when no code points at it (-1: missing).
        codes = np.asarray(series.array.codes)
        counts = np.bincount(codes[codes >= 0], minlength=len(dtype.categories))
        if (counts == 0).any():
            changed[label] = series.cat.remove_unused_categories()
    if not changed:
        return table
    if isinstance(table, ColumnTable):
        return table.with_columns(changed)
    out = table.copy(deep=False)  # copy-on-write: the caller's frame is not changed
    for label, values in changed.items():
        out[label] = values
    return out


_WHOLE_LIMIT = 1e15  # whole numbers below this print as integers (R: 1e15 prints as 1e+15)


def label_key(value: object) -> str:
    """R's ``as.character`` of a label: ``1``, ``1.0`` and ``"1"`` all give ``"1"``."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, np.timedelta64):
        # numpy registers it as an integer; a duration label reads as pandas prints it.
        return str(pd.Timedelta(value))
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
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_, np.timedelta64)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def factor_codes(series: pd.Series) -> tuple[IntArray, list[object], NDArray[np.object_]]:
    """Integer codes, levels and level keys of a grouping variable (no missing values).

    Levels are sorted as R sorts a factor's levels (category order for a categorical, numeric
    or text order otherwise); labels with the same ``label_key`` are one level (the first of
    them in that order names it)."""
    direct = _categorical_codes(series)
    if direct is not None:
        codes, labels, values = direct
    else:
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


def _categorical_codes(series: pd.Series) -> tuple[IntArray, list[object], Any] | None:
    """For a categorical of numbers or text with every category present and no missing value:
    its own codes, categories and their values, which are what pd.factorize(sort=True) and the
    labels' Index give (category order), without either; None otherwise."""
    dtype = series.dtype
    if not isinstance(dtype, pd.CategoricalDtype):
        return None
    categories = dtype.categories
    if not (
        categories.dtype.kind in "iuf"
        or (
            pd.api.types.is_string_dtype(categories.dtype)
            and pd.api.types.infer_dtype(categories, skipna=False) == "string"
        )
    ):
        return None
    codes = np.asarray(series.array.codes, dtype=np.intp)
    if codes.size == 0 or codes.min() < 0:
        return None
    if np.count_nonzero(np.bincount(codes, minlength=len(categories))) != len(categories):
        return None
    # The labels from the numpy values (an Arrow-backed Index's tolist is slow).
    values = categories.to_numpy()
    return codes, values.tolist(), values


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
