"""One reader policy for every input path (model/frame.py), and the input defects of issue 18.

The same table (contraception) delivered every way a user can deliver it gives the same model;
each defect the issue lists is reproduced here and now passes.
"""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import polars_frame

import glmm_binomial as g
from glmm_binomial.diagnostics import NonIntegerCountsWarning
from glmm_binomial.model.frame import (
    ColumnTraits,
    column_kind,
    column_traits,
    factor_levels,
    read_columns,
    read_like,
)

FORMULA = "use ~ age + I(age^2) + urban + livch + (1 | district)"
NAMES = ["(Intercept)", "age", "I(age^2)", "urbanY", "livch1", "livch2", "livch3+"]
TEXT = ["woman", "district", "livch", "urban"]
NUMBERS = ["use", "age"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return g.datasets.load("contraception")


@pytest.fixture(scope="module")
def reference(table: pd.DataFrame) -> Any:
    return g.fit(FORMULA, table)


def read_file(path: Path, sep: str | None = None, decimal: str | None = None) -> pd.DataFrame:
    """A data file as the command line reads it (its reader function, not pandas directly)."""
    try:  # the front ends' reader (separator and decimal comma detected), where merged
        from glmm_binomial.frontends.reader import read_table  # type: ignore[import-not-found]
    except ImportError:
        # The CLI of this branch: the separator is sniffed, the decimal mark given (--decimal ,
        # as a user of a European file does until the reader detects it). Once the front ends'
        # reader is merged, the branch above reads the same file with nothing given.
        from glmm_binomial.frontends.cli import read_table as cli_read_table

        args = argparse.Namespace(sep=sep, decimal=decimal or ".", encoding="utf-8", sheet=None)
        return cli_read_table(str(path), args, set())
    return read_table(str(path))[0]


def as_text(frame: pd.DataFrame, columns: list[str], dtype: Any) -> pd.DataFrame:
    """Columns as text (numbers written as Python writes them, which reads back exactly)."""
    return frame.assign(**{c: frame[c].astype(str).astype(dtype) for c in columns})


def third_as_text(series: pd.Series) -> pd.Series:
    """An object column with every third value written as text (as spreadsheets export)."""
    out = series.astype(object).copy()
    out.iloc[::3] = series.iloc[::3].astype(str)
    return out


def deliveries() -> list[Any]:
    return [
        "pandas categorical text, float numbers",
        "pandas object text and numbers",
        "pandas str dtype (astype(str))",
        "pandas 'string' dtype",
        "pandas Arrow strings",
        "pandas category text, object numbers with a third as text",
        "polars",
        "CSV",
        "CSV ; with decimal commas",
        "XLSX",
        "Parquet with text numbers",
        "Dask with mixed label types across partitions",
    ]


def deliver(how: str, table: pd.DataFrame, tmp_path: Path, request: Any) -> Any:
    everything = TEXT + NUMBERS
    if how == "pandas categorical text, float numbers":
        return table
    if how == "pandas object text and numbers":
        return as_text(table, everything, object)
    if how == "pandas str dtype (astype(str))":
        return table.assign(**{c: table[c].astype(str) for c in everything})
    if how == "pandas 'string' dtype":
        return as_text(table, everything, "string")
    if how == "pandas Arrow strings":
        pa = pytest.importorskip("pyarrow")
        return as_text(table, everything, pd.ArrowDtype(pa.string()))
    if how == "pandas category text, object numbers with a third as text":
        return table.assign(age=third_as_text(table["age"]), use=third_as_text(table["use"]))
    if how == "polars":
        pl = pytest.importorskip("polars")
        pytest.importorskip("narwhals")
        return pl.DataFrame(
            {
                "district": table["district"].astype(int).to_numpy(),
                "use": table["use"].astype(str).tolist(),  # text numbers, pl.String
                "age": table["age"].astype(str).tolist(),
                "urban": pl.Series(table["urban"].astype(str).tolist(), dtype=pl.Categorical),
                "livch": table["livch"].astype(str).tolist(),
            }
        )
    if how == "CSV":
        path = tmp_path / "contraception.csv"
        table.to_csv(path, index=False)
        return read_file(path)
    if how == "CSV ; with decimal commas":
        path = tmp_path / "contraception_eu.csv"
        table.to_csv(path, index=False, sep=";", decimal=",")
        assert "18,44" in path.read_text(encoding="utf-8")
        return read_file(path, sep=";", decimal=",")
    if how == "XLSX":
        pytest.importorskip("openpyxl")
        path = tmp_path / "contraception.xlsx"
        # Numbers stored as text in a third of the age cells, as exported workbooks have them.
        table.assign(age=third_as_text(table["age"])).to_excel(path, index=False)
        return read_file(path)
    if how == "Parquet with text numbers":
        pytest.importorskip("pyarrow")
        path = tmp_path / "contraception.parquet"
        as_text(table, everything, str).to_parquet(path, index=False)
        return read_file(path)
    if how == "Dask with mixed label types across partitions":
        dask = pytest.importorskip("dask")
        dd = pytest.importorskip("dask.dataframe")
        pytest.importorskip("distributed")
        request.getfixturevalue("client")
        rows = np.arange(len(table))
        parts = []
        for k, chosen in enumerate(np.array_split(rows, 3)):
            part = table.iloc[chosen].copy()
            if k == 0:  # district as text "1", age as text
                part = part.assign(
                    district=part["district"].astype(str), age=part["age"].astype(str)
                )
            elif k == 1:  # district as integers 1, age an object column a third text
                part = part.assign(
                    district=part["district"].astype(int), age=third_as_text(part["age"])
                )
            else:  # district as floats 1.0
                part = part.assign(district=part["district"].astype(float))
            parts.append(dask.delayed(part))
        meta = table.iloc[:0].assign(
            district=pd.Series([], dtype=object), age=pd.Series([], dtype=object)
        )
        # Partitions whose dtypes differ, as Parquet files written by different tools are.
        return dd.from_delayed(parts, meta=meta, verify_meta=False)
    raise AssertionError(how)


@pytest.fixture(scope="module")
def client() -> Any:
    pytest.importorskip("distributed")
    from _dask_support import local_client

    yield from local_client()


@pytest.mark.parametrize("how", deliveries())
def test_one_table_any_delivery_one_model(how, table, reference, tmp_path, request):
    data = deliver(how, table, tmp_path, request)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no delivery warns (no dtype warning, no new level)
        result = g.fit(FORMULA, data)
    assert list(result.params.index) == NAMES
    # In memory the design is the same matrix, so the fit is the same bit for bit; a Dask fit
    # sums its partitions in another order (README: equal to 1e-8 relative and better).
    tolerance = 1e-10 * abs(reference.loglik) if how.startswith("Dask") else 1e-10
    assert result.loglik == pytest.approx(reference.loglik, abs=tolerance, rel=0)
    np.testing.assert_allclose(result.params, reference.params, rtol=1e-6, atol=1e-8)
    assert result.ranef()["district"].shape[0] == 60


# --- 1. the reader policy ----------------------------------------------------------------------


def test_numbers_as_text_are_numbers_whatever_the_dtype(table):
    pa = pytest.importorskip("pyarrow")
    base = g.fit("use ~ age + urban + (1 | district)", table).loglik
    for dtype in (
        object,
        str,
        "string",
        pd.ArrowDtype(pa.string()),
        pd.ArrowDtype(pa.large_string()),
    ):
        frame = table.assign(age=table["age"].astype(str).astype(dtype))
        assert g.fit("use ~ age + urban + (1 | district)", frame).loglik == base, dtype


def test_text_factor_in_string_dtype_is_a_factor(table):
    # pandas' "string" dtype: was refused with "could not convert string to float: 'Y'".
    frame = table.assign(urban=table["urban"].astype(str).astype("string"))
    result = g.fit("use ~ age + urban + (1 | district)", frame)
    assert list(result.params.index) == ["(Intercept)", "age", "urbanY"]


def test_a_categorical_of_numbers_stays_a_factor():
    # R: a factor stays a factor, even when its labels are numbers.
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "y": rng.integers(0, 2, 300),
            "dose": rng.choice([1, 2, 4], 300),
            "g": np.repeat(np.arange(30), 10),
        }
    )
    numeric = g.fit("y ~ dose + (1 | g)", frame)
    factor = g.fit("y ~ dose + (1 | g)", frame.assign(dose=frame["dose"].astype("category")))
    assert list(numeric.params.index) == ["(Intercept)", "dose"]
    assert list(factor.params.index) == ["(Intercept)", "dose2", "dose4"]
    # The same categories as text: the same factor.
    text = frame.assign(dose=frame["dose"].astype(str).astype("category"))
    assert g.fit("y ~ dose + (1 | g)", text).loglik == factor.loglik


def test_logical_predictor_is_named_as_r_names_it(table):
    pytest.importorskip("polars")
    u = (table["urban"] == "Y").to_numpy()
    variants = {
        "bool": u,
        "boolean": pd.array(u, dtype="boolean"),
        "object bools": pd.array(list(u), dtype=object),
        "text TRUE/FALSE": np.where(u, "TRUE", "FALSE"),
        "text True/False": pd.Series(u).astype(str).to_numpy(),
    }
    losses = set()
    for name, values in variants.items():
        result = g.fit("use ~ age + u + (1 | district)", table.assign(u=values))
        assert list(result.params.index) == ["(Intercept)", "age", "uTRUE"], name
        losses.add(result.loglik)
    assert len(losses) == 1
    polars = polars_frame(table.assign(u=u, district=table["district"].astype(str)))
    result = g.fit("use ~ age + u + (1 | district)", polars.drop("woman", "livch", "urban"))
    assert list(result.params.index) == ["(Intercept)", "age", "uTRUE"]
    # district as text orders its levels as text ("1", "10", ...): the same model, its sums
    # taken in another order, so equal up to rounding.
    assert result.loglik == pytest.approx(losses.pop(), rel=1e-13)
    # Without an intercept both levels get a column, as in R (uFALSE, uTRUE).
    result = g.fit("use ~ 0 + u + age + (1 | district)", table.assign(u=u))
    assert list(result.params.index)[:2] == ["uFALSE", "uTRUE"]
    # predict reads new data's logical column the same way, in any spelling.
    fitted = g.fit("use ~ age + u + (1 | district)", table.assign(u=u))
    new = table.head(6).assign(u=u[:6])
    expected = fitted.predict(new)
    for values in (np.where(u[:6], "TRUE", "FALSE"), pd.array(u[:6], dtype="boolean")):
        pd.testing.assert_series_equal(fitted.predict(new.assign(u=values)), expected)
    with pytest.raises(ValueError, match="column 'u' must hold logical values"):
        fitted.predict(new.assign(u=np.where(u[:6], "yes", "no")))


def test_logical_column_inside_an_expression_is_zero_one(table):
    u = (table["urban"] == "Y").to_numpy()
    as_term = g.fit("use ~ age + u + (1 | district)", table.assign(u=u))
    in_expression = g.fit("use ~ age + I(u * 1) + (1 | district)", table.assign(u=u))
    assert list(in_expression.params.index) == ["(Intercept)", "age", "I(u * 1)"]
    assert in_expression.loglik == pytest.approx(as_term.loglik, abs=1e-8)


@pytest.mark.parametrize(
    ("formula", "names"),
    [
        ("use ~ age + I(u) + (1 | district)", ["(Intercept)", "age", "I(u)TRUE"]),
        ("use ~ 0 + I(u) + (1 | district)", ["I(u)FALSE", "I(u)TRUE"]),
        (
            "use ~ age + I(u * 1) + I(!u) + (1 | district)",
            ["(Intercept)", "age", "I(u * 1)"],  # I(!u)TRUE aliased with I(u * 1)
        ),
    ],
)
def test_logical_column_in_an_expression_is_r_logical_whatever_its_dtype(table, formula, names):
    """I(u) of a logical column is R's logical, a FALSE/TRUE factor (I(u)TRUE; without an
    intercept both levels), and u * 1 its 1/0, whether u is numpy bool, text TRUE/FALSE or
    pandas' boolean with a missing value (I(u) was the number 1/0 for text, and another model
    without an intercept)."""
    u = (table["urban"] == "Y").to_numpy()
    with_missing = pd.array(u, dtype="boolean")
    with_missing[5] = pd.NA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [
            g.fit(formula, table.assign(u=values).drop(index=5))
            for values in (u, np.where(u, "TRUE", "FALSE"))
        ]
        fits.append(g.fit(formula, table.assign(u=with_missing)))
    for fit in fits:
        assert list(fit.params.index) == names
    assert fits[1].loglik == fits[0].loglik
    assert fits[2].loglik == pytest.approx(fits[0].loglik, rel=1e-12)


def test_group_labels_compare_as_their_text_everywhere(table):
    base = g.fit(FORMULA, table)
    district = table["district"].astype(int)
    mixed = district.astype(object).copy()
    mixed.iloc[::3] = district.iloc[::3].astype(str)
    mixed.iloc[1::3] = district.iloc[1::3].astype(float)
    result = g.fit(FORMULA, table.assign(district=mixed))
    assert result.loglik == pytest.approx(base.loglik, abs=1e-10)
    assert result.ranef()["district"].shape[0] == 60


def test_reader_policy_units():
    pa = pytest.importorskip("pyarrow")
    assert column_traits(pd.Series(["1", " 2.5 ", None, "", "NA", "1e3"])).numbers
    assert not column_traits(pd.Series(["1", "x"])).numbers
    assert not column_traits(pd.Series(["1", True], dtype=object)).numbers
    assert column_traits(pd.Series(["TRUE", "false", None])).logical
    assert column_traits(pd.Series(["1", "2"], dtype=pd.ArrowDtype(pa.string()))).numbers
    assert column_traits(pd.Categorical([1, 2])).categorical
    # Traits of pieces combine like the whole column's (Dask partitions).
    whole = pd.Series(["1", "2", "x"], dtype=object)
    assert column_traits(whole[:2]) & column_traits(whole[2:]) == column_traits(whole)
    empty = ColumnTraits(categorical=False, logical=True, numbers=True)
    assert column_traits(pd.Series([None, None], dtype=object)) == empty
    assert column_kind(column_traits(pd.Series([True, False])), True, "u") == "logical_factor"
    assert column_kind(column_traits(pd.Series([True, False])), False, "u") == "logical"
    assert factor_levels([2, "1", 1.0, "b", None]) == ("1", "2", "b")
    assert factor_levels([True, "FALSE"], logical=True) == ("FALSE", "TRUE")
    frame = pd.DataFrame({"a": ["1", "2"], "b": ["x", "1"], "c": [True, False]})
    read, kinds = read_columns(frame, ["a", "b", "c"], factor_terms={"c"})
    assert kinds == {"a": "number", "b": "factor", "c": "logical_factor"}
    assert read["a"].dtype == np.float64 and list(read["c"].cat.categories) == ["FALSE", "TRUE"]
    assert frame["a"].dtype != np.float64  # the caller's frame is not modified
    from glmm_binomial.model.frame import ColumnReading

    with pytest.raises(ValueError, match=r"newdata column 'a' must hold numbers.*row 1 has 'x'"):
        read_like(pd.DataFrame({"a": ["1", "x"]}), [ColumnReading("a", "number")])


# --- 2. arguments --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return g.datasets.load("cbpp")


PROPORTION = "incidence / size ~ period + (1 | herd)"


def test_weights_series_in_another_order_is_aligned_on_the_index(cbpp):
    frame = cbpp.assign(p=cbpp["incidence"] / cbpp["size"])
    expected = g.fit("p ~ period + (1 | herd)", frame, weights="size")
    shuffled = frame["size"].sample(frac=1, random_state=1)
    result = g.fit("p ~ period + (1 | herd)", frame, weights=shuffled)
    assert result.loglik == expected.loglik  # was -95.62 (matched by position) vs -92.03
    # The same for offset=.
    offset = pd.Series(np.log(frame["size"]), index=frame.index)
    first = g.fit("p ~ period + (1 | herd)", frame, weights="size", offset=offset)
    second = g.fit("p ~ period + (1 | herd)", frame, weights=shuffled, offset=offset.iloc[::-1])
    assert second.loglik == first.loglik
    # predict's offset= is aligned on newdata's index too.
    new = frame.head(8)
    pd.testing.assert_series_equal(
        first.predict(new, offset=offset.head(8).iloc[::-1]),
        first.predict(new, offset=offset.head(8).to_numpy()),
    )


def test_weights_series_that_cannot_be_aligned_is_refused(cbpp):
    frame = cbpp.assign(p=cbpp["incidence"] / cbpp["size"])
    other = frame["size"].set_axis(frame.index + 1000)
    with pytest.raises(ValueError, match=r"weights is a pandas Series whose index does not match"):
        g.fit("p ~ period + (1 | herd)", frame, weights=other)
    partial = pd.concat([frame["size"].iloc[:-1], pd.Series([5.0], index=[999])])
    with pytest.raises(ValueError, match=r"labels 999 of weights are not in data's index"):
        g.fit("p ~ period + (1 | herd)", frame, weights=partial)
    duplicated = frame["size"].set_axis([0] * len(frame))
    with pytest.raises(ValueError, match="duplicated labels"):
        g.fit("p ~ period + (1 | herd)", frame, weights=duplicated)
    pytest.importorskip("polars")
    pytest.importorskip("narwhals")
    with pytest.raises(ValueError, match="no index to match it on"):
        g.fit("p ~ period + (1 | herd)", polars_frame(frame), weights=other)
    # Plain values (and a polars frame with a default-index Series) are taken in row order.
    positional = g.fit("p ~ period + (1 | herd)", frame, weights=frame["size"].to_numpy())
    assert positional.loglik == g.fit("p ~ period + (1 | herd)", frame, weights="size").loglik


def test_non_integer_counts_warn_as_r_does(cbpp):
    with pytest.warns(NonIntegerCountsWarning, match=r"non-integer #successes in a binomial glm"):
        result = g.fit("cbind(incidence + 0.5, size - incidence) ~ period + (1 | herd)", cbpp)
    assert any("non-integer #successes" in w for w in result.warnings)
    with pytest.warns(NonIntegerCountsWarning, match=r"non-integer #trials"):
        g.fit("cbind(incidence, size - incidence + 0.5) ~ period + (1 | herd)", cbpp)
    frame = cbpp.assign(p=cbpp["incidence"] / cbpp["size"])
    with pytest.warns(NonIntegerCountsWarning):
        g.fit("p ~ period + (1 | herd)", frame, weights=frame["size"] * 0.7)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonIntegerCountsWarning)
        g.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
        g.fit("p ~ period + (1 | herd)", frame, weights="size")


def test_duplicate_column_names_are_refused_by_name(table):
    doubled = pd.concat([table, table[["age"]]], axis=1)
    with pytest.raises(ValueError, match=r"data has more than one column named 'age'"):
        g.fit(FORMULA, doubled)  # was AttributeError: 'DataFrame' object has no attribute 'dtype'
    # A duplicated column the model does not use is no ambiguity.
    unused = pd.concat([table, table[["woman"]]], axis=1)
    assert g.fit(FORMULA, unused).loglik == g.fit(FORMULA, table).loglik
    result = g.fit(FORMULA, table)
    with pytest.raises(ValueError, match=r"newdata has more than one column named 'age'"):
        result.predict(doubled.head())


DATE_COLUMNS = {
    "datetime64": lambda t: t,
    "with a zone": lambda t: t.dt.tz_localize("UTC"),
    "timedelta64": lambda t: t - t.min(),
    "periods": lambda t: t.dt.to_period("D"),
    "date objects": lambda t: pd.Series(t.dt.date.to_numpy(dtype=object), index=t.index),
    "datetime objects": lambda t: pd.Series(list(t.dt.to_pydatetime()), dtype=object),
}


@pytest.mark.parametrize("how", list(DATE_COLUMNS))
def test_dates_and_times_are_refused_by_name_unless_they_are_group_labels(table, how):
    days = pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(table)), "D"))
    frame = table.assign(t=DATE_COLUMNS[how](days).to_numpy())
    frame.loc[5, "t"] = None  # a missing value does not hide what the column holds
    before = frame.copy()
    # Was a factor: 1,934 levels (each day its own coefficient), "complete separation".
    for formula in ("use ~ age + t + (1 | district)", "use ~ age + (1 + t | district)"):
        with pytest.raises(ValueError, match=r"column 't' holds dates or times.*days since"):
            g.fit(formula, frame)
    pd.testing.assert_frame_equal(frame, before)
    # As a grouping factor alone, dates are labels.
    labels = pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(days.index % 40, "D"))
    frame = table.assign(day=DATE_COLUMNS[how](labels).to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no day-to-day variance in these data: singular
        assert g.fit("use ~ age + (1 | day)", frame).ngroups["day"] == 40


def test_a_frame_with_multiindex_columns_is_refused_by_argument(table):
    frame = table.copy()
    frame.columns = pd.MultiIndex.from_tuples([(c, "x") for c in table.columns])
    with pytest.raises(ValueError, match=r"data has columns on 2 levels \(a MultiIndex\)"):
        g.fit(FORMULA, frame)  # was AttributeError: 'DataFrame' object has no attribute 'dtype'
    result = g.fit(FORMULA, table)
    with pytest.raises(ValueError, match=r"newdata has columns on 2 levels"):
        result.predict(frame.head())


def test_offset_takes_any_expression(table):
    in_formula = g.fit("use ~ age + offset(age / 10) + (1 | district)", table)
    as_argument = g.fit("use ~ age + (1 | district)", table, offset=table["age"] / 10)
    assert in_formula.loglik == pytest.approx(as_argument.loglik, abs=1e-10)
    new = table.head(5)
    np.testing.assert_allclose(
        in_formula.predict(new), as_argument.predict(new, offset=new["age"] / 10), rtol=1e-12
    )
    squared = g.fit("use ~ age + offset(age^2 / 1000 - 1) + (1 | district)", table)
    manual = g.fit("use ~ age + (1 | district)", table, offset=table["age"] ** 2 / 1000 - 1)
    assert squared.loglik == pytest.approx(manual.loglik, abs=1e-10)


# --- 4. Dask: the same policy in every partition ---------------------------------------------


def dask_frame(parts: list[pd.DataFrame], meta: pd.DataFrame) -> Any:
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    return dd.from_delayed([dask.delayed(p) for p in parts], meta=meta, verify_meta=False)


@pytest.fixture(scope="module")
def integer_districts(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(
        district=table["district"].astype(int), urban=table["urban"].astype(str)
    ).drop(columns=["woman", "livch"])


def test_dask_label_types_differing_between_partitions(client, integer_districts):
    frame = integer_districts
    formula = "use ~ age + urban + (1 | district)"
    memory = g.fit(formula, frame)
    # district "1" (text) in one partition, 1 (integer) in the other: every district in both.
    parts = [
        frame.iloc[::2].assign(district=frame["district"].iloc[::2].astype(str)),
        frame.iloc[1::2],
    ]
    fitted = g.fit(formula, dask_frame(parts, parts[0].iloc[:0]))
    # was -1254.10 (each district's rows shuffled apart) vs -1250.20 in memory
    assert fitted.loglik == pytest.approx(memory.loglik, rel=1e-10)
    assert len(fitted.ranef()["district"]) == 60


def test_dask_object_column_with_text_numbers_is_numeric(client, integer_districts):
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    frame = integer_districts.assign(age=third_as_text(integer_districts["age"]))
    formula = "use ~ age + urban + (1 | district)"
    memory = g.fit(formula, frame)
    assert list(memory.params.index) == ["(Intercept)", "age", "urbanY"]
    for convert in (True, False):  # Dask's default makes the column strings
        with dask.config.set({"dataframe.convert-string": convert}):
            ddf = dd.from_pandas(frame, npartitions=3)
        fitted = g.fit(formula, ddf)  # was a 51-level factor (logLik -1176.95) with strings
        assert list(fitted.params.index) == ["(Intercept)", "age", "urbanY"]
        assert fitted.loglik == pytest.approx(memory.loglik, rel=1e-10)


def test_dask_logical_predictor_named_as_in_memory(client, integer_districts):
    dd = pytest.importorskip("dask.dataframe")
    frame = integer_districts.assign(u=integer_districts["urban"] == "Y")
    formula = "use ~ age + u + (1 | district)"
    memory = g.fit(formula, frame)
    fitted = g.fit(formula, dd.from_pandas(frame, npartitions=3))
    assert list(fitted.params.index) == list(memory.params.index) == ["(Intercept)", "age", "uTRUE"]
    assert fitted.loglik == pytest.approx(memory.loglik, rel=1e-10)
    # The Dask result reads new data as the fit read its columns.
    new = frame.head(5).assign(u=np.where(frame["u"].head(5), "TRUE", "FALSE"))
    np.testing.assert_allclose(fitted.predict(new), memory.predict(frame.head(5)), rtol=1e-6)


def test_text_of_decimal_comma_numbers_is_a_factor_with_a_warning(table):
    frame = table.assign(age=table["age"].astype(str).str.replace(".", ",", regex=False))
    with pytest.warns(
        g.GLMMWarning,
        match=r"column 'age' is read as a factor of 50 levels: .*"
        r"decimal comma \('-0,5599'\).*decimal=','",
    ):
        result = g.fit("use ~ age + (1 | district)", frame)
    assert any("decimal comma" in w for w in result.warnings)
    # Given as a categorical, a factor was meant: no warning; labels with other text neither.
    dose = table["livch"].map({"0": "0,5", "1": "1", "2": "1,5", "3+": "2"}).astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("error", g.GLMMWarning)
        g.fit("use ~ dose + (1 | district)", table.assign(dose=dose.astype("category")))
        g.fit("use ~ dose + (1 | district)", table.assign(dose=dose + " mg"))
    with pytest.warns(g.GLMMWarning, match=r"column 'dose' is read as a factor of 4 levels"):
        g.fit("use ~ dose + (1 | district)", table.assign(dose=dose))


def test_names_with_letters_beyond_ascii_need_no_backticks(table):
    # R reads âge or Größe as names (in a UTF-8 locale); was "unexpected character 'â'".
    names = {"age": "âge", "urban": "Größe", "district": "région"}
    renamed = table.rename(columns=names)
    plain = g.fit("use ~ age * urban + I(age^2) + (1 + urban | district)", table)
    result = g.fit("use ~ âge * Größe + I(âge^2) + (1 + Größe | région)", renamed)
    assert result.loglik == pytest.approx(plain.loglik, rel=1e-12)
    assert list(result.params.index) == ["(Intercept)", "âge", "GrößeY", "I(âge^2)", "âge:GrößeY"]
    assert list(result.ngroups) == ["région"]
    np.testing.assert_allclose(result.predict(renamed.head()), plain.predict(table.head()))


def test_a_polars_enum_is_a_factor_in_its_declared_order(table):
    pl = pytest.importorskip("polars")
    pytest.importorskip("narwhals")
    order = ["3+", "2", "1", "0", "unused"]
    frame = table[["use", "age", "livch", "district"]].assign(
        livch=table["livch"].astype(str), district=table["district"].astype(str)
    )
    polars = pl.DataFrame({name: column.tolist() for name, column in frame.items()}).with_columns(
        pl.col("livch").cast(pl.Enum(order))
    )
    formula = "use ~ age + livch + (1 | district)"
    # Was AttributeError: 'Enum' object has no attribute '_cached_categories' (narwhals v1).
    fitted = g.fit(formula, polars)
    ordered = g.fit(formula, frame.assign(livch=pd.Categorical(frame["livch"], categories=order)))
    assert list(fitted.params.index) == ["(Intercept)", "age", "livch2", "livch1", "livch0"]
    assert list(fitted.params.index) == list(ordered.params.index)
    assert fitted.loglik == pytest.approx(ordered.loglik, rel=1e-12)


def test_dask_relevel_of_a_factor_column_as_in_memory(client, integer_districts):
    dd = pytest.importorskip("dask.dataframe")
    frame = integer_districts.assign(kids=pd.Categorical(table_livch(integer_districts)))
    formula = 'use ~ age + relevel(kids, "2") + (1 | district)'
    memory = g.fit(formula, frame)
    fitted = g.fit(formula, dd.from_pandas(frame, npartitions=3))
    assert list(fitted.params.index) == list(memory.params.index)
    assert list(fitted.params.index)[2:] == [f'relevel(kids, "2"){k}' for k in ("0", "1", "3")]
    assert fitted.loglik == pytest.approx(memory.loglik, rel=1e-10)


def table_livch(frame: pd.DataFrame) -> list[str]:
    """A factor of four levels from the row numbers (integer_districts has no livch)."""
    return [str(i % 4) for i in range(len(frame))]


def test_dask_date_column_is_refused_by_name(client, integer_districts):
    dd = pytest.importorskip("dask.dataframe")
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(integer_districts)), "D")
    frame = integer_districts.assign(t=days)
    with pytest.raises(ValueError, match=r"column 't' holds dates or times"):
        g.fit("use ~ age + t + (1 | district)", dd.from_pandas(frame, npartitions=3))


def test_spreadsheet_ranges_follow_the_same_rule():
    y = [[0], [1], [1], [0], [1], [1]]
    x = [[1], [2], [1.5], [2.5], [3], [1.2]]
    groups = [[1], [1], [2], [2], [3], [3]]
    base = g.glmm_binomial(y, x, groups, method="laplace")
    # Numbers stored as text, TRUE/FALSE text in y, labels compared as their text.
    text_x = [["1"], [" 2 "], ["1.5"], [2.5], ["3e0"], [1.2]]
    text_y = [["0"], ["TRUE"], [True], ["0"], [1], ["1"]]
    text_groups = [["1"], [1.0], [2], ["2"], [3], [3.0]]
    assert g.glmm_binomial(text_y, text_x, text_groups, method="laplace") == base
    message = g.glmm_binomial(y, [["1"], ["x"], [1.5], [2.5], [3], [1.2]], groups)
    assert message == "Invalid input: x must contain finite numbers: row 2 is text ('x')."


def test_a_response_factor_of_more_levels_is_refused_saying_how_to_read_it_as_r(table):
    frame = table.assign(resp=table["livch"])
    message = r"it has 4 distinct values; for R's reading .* write I\(resp != '0'\) ~"
    with pytest.raises(ValueError, match=message):
        g.fit("resp ~ age + (1 | district)", frame)
    # What the message proposes is R's binomial reading of the factor.
    fitted = g.fit("I(resp != '0') ~ age + (1 | district)", frame)
    direct = g.fit("y ~ age + (1 | district)", table.assign(y=(table["livch"] != "0") * 1))
    assert fitted.loglik == pytest.approx(direct.loglik, rel=1e-12)


def test_a_column_of_numbers_with_stray_text_is_a_factor_with_a_warning(table):
    # R reads it as labels too, but a "?" for a missing value made 50 ages 51 levels.
    stray = table["age"].astype(object).where(~table.index.isin([5, 6]), "?")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # (A factor of 51 ages separates, too.)
        result = g.fit("use ~ age + (1 | district)", table.assign(age=stray))
    expected = (
        r"column 'age' is read as a factor of 51 levels, as R reads it, because 1 of its "
        r"labels is not a number \('\?', 2 rows\).*errors='coerce'"
    )
    assert [w for w in caught if re.search(expected, str(w.message))]
    assert any("'?'" in w for w in result.warnings)
    assert not any("decimal comma" in str(w.message) for w in caught)
    # A categorical was meant as one; words with a few codes, or a few numbers, are factors.
    codes = table["livch"].astype(str).map({"0": "none", "1": "1", "2": "2", "3+": "3+"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", message="column .* is read as a factor")
        g.fit("use ~ age + (1 | district)", table.assign(age=stray.astype(str).astype("category")))
        g.fit("use ~ kids + (1 | district)", table.assign(kids=codes))
    # Whole numbers and one decimal comma: both readings apply, said once, as decimal commas.
    whole = table["age"].round().astype(int).astype(str)
    commas = whole.where(table.index != 3, "3,5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g.fit("use ~ age + (1 | district)", table.assign(age=commas))
    said = [str(w.message) for w in caught if "is read as a factor" in str(w.message)]
    assert len(said) == 1 and "decimal comma" in said[0]


def test_dask_warns_of_text_meant_as_numbers_as_in_memory(client, integer_districts):
    dd = pytest.importorskip("dask.dataframe")
    age = integer_districts["age"]
    cases = {
        "decimal comma": age.astype(str).str.replace(".", ",", regex=False),
        "is not a number": age.astype(object).where(~age.index.isin([5, 6]), "?"),
    }
    for said, column in cases.items():
        frame = integer_districts.assign(age=column)
        with warnings.catch_warnings(record=True) as memory_caught:
            warnings.simplefilter("always")
            memory = g.fit("use ~ age + (1 | district)", frame)
        with warnings.catch_warnings(record=True) as dask_caught:
            warnings.simplefilter("always")
            fitted = g.fit("use ~ age + (1 | district)", dd.from_pandas(frame, npartitions=3))
        for caught, result in ((memory_caught, memory), (dask_caught, fitted)):
            texts = [str(w.message) for w in caught if "is read as a factor" in str(w.message)]
            assert len(texts) == 1 and said in texts[0], texts
            assert [w for w in result.warnings if "is read as a factor" in w] == texts
