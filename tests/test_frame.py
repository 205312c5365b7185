"""frame.py: reading data frames as R does (numbers in object columns, unused levels, labels)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.model.frame import (
    ColumnTable,
    as_frame,
    as_pandas,
    category_labels,
    complete_rows,
    drop_unused_categories,
    factor_codes,
    label_key,
    label_keys,
    match_codes,
    numbers_as_numeric,
    read_columns,
    read_table,
)


def test_label_key_is_r_as_character():
    assert [label_key(v) for v in (1, 1.0, "1", np.int64(1), np.float32(1.0))] == ["1"] * 5
    assert label_key(0.1 + 0.2) == "0.3" and label_key(2.5) == "2.5"
    assert label_key(True) == "TRUE" and label_key("a b") == "a b"


@given(st.lists(st.one_of(st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6), st.text(max_size=3))))
def test_vectorized_keys_equal_one_by_one_keys(values):
    for array in (values, pd.Index(values, dtype=object).to_numpy()):
        assert list(label_keys(array)) == [label_key(v) for v in array]


def test_factor_codes_merge_labels_with_one_key():
    codes, levels, keys = factor_codes(pd.Series([2, "1", 1.0, "b", 1], dtype=object))
    assert levels == [1.0, 2, "b"]
    assert list(keys) == ["1", "2", "b"]
    assert codes.tolist() == [1, 0, 0, 2, 0]
    found, new = match_codes(pd.Series([1, "2", 2.0, "c"], dtype=object), keys)
    assert found.tolist() == [0, 1, 1, -1] and new == ["c"]


def test_numbers_in_object_columns_become_numeric():
    frame = pd.DataFrame(
        {
            "a": pd.Series([1, 2.5, None], dtype=object),
            "b": pd.Series(["1", "2.5", None], dtype=object),
            "c": pd.Series(["1", "x", None], dtype=object),
            "d": pd.Series([True, False, True], dtype=object),
        }
    )
    out = numbers_as_numeric(frame, ["a", "b", "c", "d"])
    assert out["a"].dtype.kind == "f" and out["b"].dtype.kind == "f"
    assert out["c"].dtype == object and out["d"].dtype == object
    assert frame["a"].dtype == object  # the caller's frame is not modified


def test_unused_categories_are_dropped():
    frame = pd.DataFrame({"f": pd.Categorical(["a", "b"], categories=["a", "b", "c"])})
    assert list(drop_unused_categories(frame)["f"].cat.categories) == ["a", "b"]
    assert list(frame["f"].cat.categories) == ["a", "b", "c"]


def mixed_frame() -> pd.DataFrame:
    """Every kind of column the design stage meets, with missing values, on an index with a
    repeated label."""
    return pd.DataFrame(
        {
            "i": [1, 2, 3, 4],
            "x": [0.5, np.nan, 1.5, 2.0],
            "f": pd.Categorical(["a", None, "b", "a"], categories=["a", "b", "z"]),
            "o": np.array(["1", None, "3", "4"], dtype=object),
            "n": pd.array([1, 2, None, 4], dtype="Int64"),
            "s": pd.array(["u", "v", "w", None], dtype="string"),
            "b": [True, False, True, True],
            "g": ["01", "02", "01", "02"],
        },
        index=[10, 11, 11, 12],
    )


def test_read_table_reads_as_read_columns_and_leaves_grouping_labels():
    frame = mixed_frame()
    before = frame.copy()
    names = list(frame.columns)
    read = [n for n in names if n != "g"]
    table, kinds = read_table(frame, names, read, factor_terms={"b"})
    expected, expected_kinds = read_columns(frame, read, factor_terms={"b"})
    assert kinds == expected_kinds and list(kinds) == read
    assert table.columns == tuple(names) and len(table) == 4 and table.shape == (4, 8)
    assert table.index.equals(frame.index)
    for name in read:
        pd.testing.assert_series_equal(table[name], expected[name])
    assert table["g"].tolist() == ["01", "02", "01", "02"]  # labels keep their text
    pd.testing.assert_frame_equal(as_frame(table), expected.assign(g=frame["g"]))
    assert table["o"].dtype.kind == "f"  # numbers in text are read as numbers
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is not modified


def test_complete_rows_are_notna_all():
    frame = mixed_frame()
    table, _ = read_table(frame, list(frame.columns), [])
    assert complete_rows(table).tolist() == frame.notna().all(axis=1).tolist()
    rows = table.rows(complete_rows(table))
    assert rows.index.tolist() == [10] and rows["x"].tolist() == [0.5]
    assert as_frame(rows).shape == (1, 8)


@given(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=20))
def test_unused_categories_of_a_table_are_those_of_its_frame(labels):
    frame = pd.DataFrame({"f": pd.Categorical(labels, categories=["c", "a", "b", "d"])})
    table = ColumnTable({"f": frame["f"]}, frame.index)
    dropped = drop_unused_categories(table)
    assert isinstance(dropped, ColumnTable)
    pd.testing.assert_series_equal(dropped["f"], drop_unused_categories(frame)["f"])


def test_unreadable_data_is_refused_with_a_message():
    with pytest.raises(ValueError, match="data must be a data frame"):
        as_pandas(object())


@pytest.mark.parametrize(
    "values, categories",
    [
        (["a", "b", "a", "c d"], ["c d", "b", "a"]),
        ([3, 1, 2, 2], [3, 2, 1]),
        ([1.5, 2.0, 2.0], [2.0, 1.5]),
        (["x", "y"], ["x", "y", "unused"]),
        (["x", None, "y"], ["x", "y"]),
        ([True, False], [False, True]),
    ],
)
def test_factor_codes_of_a_categorical_equal_factorize(values: list, categories: list) -> None:
    # The categorical short cut (its own codes and categories) gives what pd.factorize gives.
    series = pd.Series(pd.Categorical(values, categories=categories)).dropna()
    codes, labels, keys = factor_codes(series)
    with mock.patch("glmm_binomial.model.frame._categorical_codes", return_value=None):
        want_codes, want_labels, want_keys = factor_codes(series)
    assert np.array_equal(codes, want_codes) and codes.dtype == want_codes.dtype
    assert labels == want_labels and [type(v) for v in labels] == [type(v) for v in want_labels]
    assert np.array_equal(keys, want_keys) and keys.dtype == want_keys.dtype


@pytest.mark.parametrize(
    "categories",
    [
        ["b", "a"],
        pd.Index(["x", "y"], dtype="string"),
        pd.Index(["x", "y"], dtype=object),
        [3, 1, 2],
        [0.5, 2.0],
        [True, False],
        pd.to_datetime(["2020-01-01", "2021-06-30"]),
        pd.period_range("2020", periods=3, freq="Y"),
    ],
)
def test_category_labels_are_the_index_tolist(categories):
    dtype = pd.CategoricalDtype(categories)
    labels = category_labels(dtype)
    expected = tuple(dtype.categories.tolist())
    assert labels == expected
    assert [type(v) for v in labels] == [type(v) for v in expected]


def test_a_column_labelled_by_a_number_is_pointed_at():
    from glmm_binomial.model.frame import spelled_otherwise

    said = spelled_otherwise(["0", "x"], [0, "y", 1.5])
    assert "'0' is a column of data labelled by a number" in said
    assert "data.columns.astype(str)" in said
    assert spelled_otherwise(["0"], ["0"]) == ""
    both = spelled_otherwise(["0", "age"], [0, "Age"], "newdata")
    assert "newdata.columns" in both and "'age' is 'Age' in newdata" in both
    contraception = g.datasets.load("contraception")
    numbered = contraception.assign(**{"0": contraception["age"]}).rename(columns={"0": 0})
    with pytest.raises(ValueError, match="labelled by a number, not by text"):
        g.fit("use ~ `0` + (1 | district)", numbered)
