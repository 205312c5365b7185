"""A fitted result is immutable in effect: no predict call, failing or not, changes what later
calls return (issue 18); and a fast slice of the predict fuzz (bench/fuzz_predict.py)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glmm_binomial as g

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import fuzz_predict  # noqa: E402

FORMULA = "use ~ age + urban + livch + (1 + age | district)"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return g.datasets.load("contraception")


@pytest.fixture(scope="module")
def result(table):
    return g.fit(FORMULA, table)


def with_value(frame: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
    values = frame[column].astype(object)
    values.iloc[1] = value
    return frame.assign(**{column: values})


def test_a_failing_predict_changes_no_later_predict(result, table):
    new = table.head(8)
    before = result.predict(new)
    # Text in a numeric column: formulaic used to record 'age' as a factor in the fit's own
    # model spec, and every later valid predict failed.
    with pytest.raises(ValueError, match=r"newdata column 'age' must hold numbers.*'abc'"):
        result.predict(with_value(new, "age", "abc"))
    pd.testing.assert_series_equal(result.predict(new), before, check_exact=True)
    for bad in (with_value(new, "urban", "Z"), new.drop(columns="livch"), "not a frame"):
        with pytest.raises(ValueError):
            result.predict(bad)
        pd.testing.assert_series_equal(result.predict(new), before, check_exact=True)


def _good_and_bad(table: pd.DataFrame) -> tuple[list[pd.DataFrame], list[object]]:
    rows = table.iloc[[0, 5, 40, 300, 1000, 1500]]
    good = [
        rows,
        rows.assign(age=rows["age"].astype(str)),
        rows.assign(age=rows["age"].astype(str).astype(object), urban=rows["urban"].astype(str)),
        rows.assign(livch=rows["livch"].astype(str).astype("string")),
        rows.assign(district=rows["district"].astype(int)),
        rows.assign(district=["999", 1, 2.0, "3", 4, 5]),  # one new level: a zero effect
        rows.iloc[::-1],
        rows.assign(age=[np.nan, *rows["age"].iloc[1:]]),
    ]
    bad = [
        with_value(rows, "age", "abc"),
        with_value(rows, "age", True),
        with_value(rows, "urban", "Z"),
        with_value(rows, "livch", 7),
        rows.drop(columns="age"),
        pd.concat([rows, rows[["urban"]]], axis=1),
        "rows.csv",
    ]
    return good, bad


@pytest.fixture(scope="module")
def pools(table, result):
    good, bad = _good_and_bad(table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.NewLevelsWarning)
        # Answers before any call has failed: every later call must give them again.
        answers = [result.predict(frame).to_numpy() for frame in good]
    return good, answers, bad


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 100)), min_size=1, max_size=12))
def test_any_sequence_of_predict_calls_gives_the_first_answers(result, pools, calls):
    good, answers, bad = pools
    for is_good, pick in calls:
        if is_good:
            k = pick % len(good)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", g.NewLevelsWarning)
                got = result.predict(good[k]).to_numpy()
            np.testing.assert_array_equal(got, answers[k])
        else:
            with pytest.raises(ValueError):
                result.predict(bad[pick % len(bad)])


def test_predict_fuzz_slice():
    # bench/fuzz_predict.py's check on a fixed seed (the long run: 10,000 calls, see its
    # docstring): every good variant gives the clean call's answer, every bad one a ValueError,
    # the canaries never change. Some variants are pandas Arrow columns.
    pytest.importorskip("pyarrow")
    tally = fuzz_predict.fuzz(calls=120, seed=20261203, canary_every=10)
    assert tally.failures == []
    assert tally.good_equal == tally.good > 40
    assert tally.bad_value_error == tally.bad > 20
    assert tally.canary_calls > 0
