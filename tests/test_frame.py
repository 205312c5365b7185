"""frame.py: reading data frames as R does (numbers in object columns, unused levels, labels)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glmm_binomial.model.frame import (
    as_pandas,
    drop_unused_categories,
    factor_codes,
    label_key,
    label_keys,
    match_codes,
    numbers_as_numeric,
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
