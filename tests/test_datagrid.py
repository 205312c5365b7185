"""datagrid (results/datagrid.py): typical and counterfactual grids. Against marginaleffects
0.11.0's datagrid in test_slopes.py (the calls with a grid in tests/reference/slopes.json), and
its newdata shortcuts here (tests/reference/newdata_shortcuts.json)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference, quiet_fit

import glmm_binomial as g


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return g.datasets.load("contraception")


@pytest.fixture(scope="module")
def fit(data: pd.DataFrame) -> g.GLMMResult:
    return quiet_fit("use ~ age + urban + livch + (1 | district)", data)


def test_typical_values(fit: g.GLMMResult, data: pd.DataFrame) -> None:
    """Numbers at their mean, factors and the grouping factor at their mode; the response
    left out; dtypes kept."""
    grid = g.datagrid(fit)
    assert list(grid.columns) == ["age", "urban", "livch", "district"]
    assert len(grid) == 1
    assert grid["age"].iloc[0] == pytest.approx(data["age"].mean(), rel=1e-12)
    for name in ("urban", "livch", "district"):
        assert grid[name].iloc[0] == data[name].value_counts().idxmax()
        assert grid[name].dtype == data[name].dtype


def test_values_given_are_crossed(fit: g.GLMMResult) -> None:
    grid = g.datagrid(fit, livch=["1", "0"], age=[-10, 0, 10])
    assert list(grid.columns) == ["urban", "district", "livch", "age"]
    assert list(grid["livch"]) == ["1"] * 3 + ["0"] * 3  # the first varies slowest
    assert list(grid["age"]) == [-10, 0, 10] * 2
    assert isinstance(grid["livch"].dtype, pd.CategoricalDtype)
    # the grid predicts as the rows it describes
    predicted = fit.predict(grid)
    assert np.all(np.isfinite(predicted)) and len(predicted) == 6
    one = g.datagrid(fit, urban="Y", livch=["1", "1"])
    assert len(one) == 1


def test_integer_mean_rounded_and_mode_ties(data: pd.DataFrame) -> None:
    """An integer column at its mean rounded half to even; of equally frequent values the
    first in the data."""
    frame = data.assign(
        children=np.where(np.arange(len(data)) % 2 == 0, 2, 3),  # mean 2.5 -> 2
        side=np.where(np.arange(len(data)) % 2 == 0, "b", "a"),  # tie: "b" comes first
    )
    fit = quiet_fit("use ~ children + side + (1 | district)", frame)
    grid = g.datagrid(fit)
    assert grid["children"].iloc[0] == 2 and pd.api.types.is_integer_dtype(grid["children"])
    assert grid["side"].iloc[0] == "b"


def test_counterfactual(fit: g.GLMMResult, data: pd.DataFrame) -> None:
    """Every fitted row at each value: averaging its predictions by the value is
    avg_predictions with the variable set."""
    before = data.copy()
    grid = g.datagrid(fit, urban=["N", "Y"], grid_type="counterfactual")
    assert len(grid) == 2 * fit.nobs
    assert list(grid.columns) == ["row", "age", "livch", "district", "urban"]
    assert list(grid["row"].iloc[:3]) == list(data.index[:3])
    assert (grid["urban"].iloc[: fit.nobs] == "N").all()
    averaged = g.avg_predictions(fit, newdata=grid, by="urban")
    direct = g.avg_predictions(fit, variables="urban")
    np.testing.assert_allclose(averaged["estimate"], direct["estimate"], rtol=1e-12)
    np.testing.assert_allclose(averaged["std_error"], direct["std_error"], rtol=1e-10)
    pd.testing.assert_frame_equal(data, before)


def test_newdata_rows(fit: g.GLMMResult, data: pd.DataFrame) -> None:
    some = data.iloc[:50]
    grid = g.datagrid(fit, newdata=some)
    assert grid["age"].iloc[0] == pytest.approx(some["age"].mean(), rel=1e-12)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"woman": 1}, "'woman' is not a variable of the model"),
        ({"use": 1}, "'use' is not a variable of the model"),
        ({"livch": "7"}, "'7' is not a level of 'livch'"),
        ({"age": "old"}, "'age' is numeric"),
        ({"age": [1.0, float("nan")]}, "'age' must be finite"),
        ({"age": []}, "no value given for 'age'"),
        ({"grid_type": "counterfactual"}, "needs values of some variable"),
        ({"grid_type": "all"}, "grid_type must be"),
        ({"newdata": pd.DataFrame({"age": [1.0]})}, "lack column 'urban'"),
    ],
)
def test_errors(fit: g.GLMMResult, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        g.datagrid(fit, **arguments)


def test_not_a_formula_fit(fit: g.GLMMResult) -> None:
    with pytest.raises(ValueError, match="datagrid needs a fit"):
        g.datagrid(object())
    with pytest.raises(ValueError, match="fitted from arrays"):
        g.datagrid(g.fit_model(fit.model))


def test_newdata_shortcuts(fit: g.GLMMResult, data: pd.DataFrame) -> None:
    """newdata="mean" is the datagrid of typical values (the effect at the mean); "median"
    and "tukey" summarize numbers by their median and fivenum; by columns at each value."""
    pd.testing.assert_frame_equal(
        g.slopes(fit, newdata="mean"), g.slopes(fit, newdata=g.datagrid(fit))
    )
    median = g.predictions(fit, newdata="median")
    assert median["age"].iloc[0] == data["age"].median()
    tukey = g.predictions(fit, newdata="tukey")
    assert len(tukey) == 5 and tukey["age"].iloc[0] == data["age"].min()
    by = g.avg_slopes(fit, "age", newdata="mean", by="urban")
    one = g.slopes(fit, "age", newdata=g.datagrid(fit, urban=["N", "Y"]))
    np.testing.assert_allclose(by["estimate"], one["estimate"], rtol=1e-12)
    with pytest.raises(ValueError, match="newdata must be data or one of 'mean'"):
        g.avg_slopes(fit, newdata="average")


SHORTCUTS = load_reference("newdata_shortcuts")
_SHORTCUT_FITS: dict[str, g.GLMMResult] = {}


def _shortcut_fit(case: dict[str, Any]) -> g.GLMMResult:
    if case["data"] not in _SHORTCUT_FITS:
        data = g.datasets.load(case["data"])
        if case["data"] == "cbpp":
            data = data.assign(failures=data["size"] - data["incidence"])
        else:  # an integer column: the number of living children, "3+" as 3
            data = data.assign(kids=data["livch"].astype(str).str[0].astype(int))
        _SHORTCUT_FITS[case["data"]] = quiet_fit(case["formula"], data)
    return _SHORTCUT_FITS[case["data"]]


@pytest.mark.parametrize(
    ("case", "call"),
    [
        pytest.param(case, call, id=f"{case['data']}|{i}|{call['fn']}|{call['newdata']}")
        for case in SHORTCUTS
        for i, call in enumerate(case["calls"])
    ],
)
def test_newdata_shortcuts_against_marginaleffects(
    case: dict[str, Any], call: dict[str, Any]
) -> None:
    """newdata "mean", "median", "tukey", "grid", "marginalmeans" as marginaleffects 0.11.0
    makes them (an integer column at its rounded mean in every one): estimates within 5e-6 of
    glmmTMB's effects, SEs within 1e-3 of glmer's effects with glmmTMB's covariance (of
    glmmTMB's own, 3e-4, without the random effects), the grid's rows as many."""
    fit = _shortcut_fit(case)
    assert fit.loglik == pytest.approx(case["loglik"]["glmmTMB"], abs=1e-6)
    arguments = {k: call[k] for k in ("newdata", "by", "re") if k in call}
    out = getattr(g, call["fn"])(fit, **arguments)
    tmb, mer = call["glmmTMB"], call["glmer_tmb_vcov"]
    if tmb.get("term") is not None:
        assert list(out["term"]) == list(np.atleast_1d(tmb["term"]))
    if "by" in call:
        assert [str(v) for v in out[call["by"]]] == list(np.atleast_1d(tmb["by_values"]))
    np.testing.assert_allclose(out["estimate"], np.atleast_1d(tmb["estimate"]), atol=5e-6)
    held = call.get("re") == "exclude"
    expected = np.atleast_1d((tmb if held else mer)["std_error"])
    np.testing.assert_allclose(out["std_error"], expected, rtol=3e-4 if held else 1e-3)
    if tmb.get("n_rows") is not None:
        assert len(g.predictions(fit, newdata=call["newdata"])) == tmb["n_rows"]
