"""R's model-matrix conventions (model.r_coding): column names and coding as lme4 gives them,
against lme4's glFormula (tests/reference/make_model_matrix_names.R)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmm_binomial as g
from glmm_binomial.model.design import build_model
from glmm_binomial.model.r_coding import r_ordered_formula
from glmm_binomial.model.transforms import materialize

REFERENCE = json.loads(
    (Path(__file__).parent / "reference" / "model_matrix_names.json").read_text()
)


def table() -> pd.DataFrame:
    """make_model_matrix_names.R's table."""
    i = np.arange(48)
    return pd.DataFrame(
        {
            "y": ((i * 7) % 3 == 0).astype(int),
            "x1": ((i * 37) % 11 - 5) / 3,
            "x2": 1 + (i % 5) / 2,
            "f": np.array(["a", "b", "c"])[i % 3],
            "k": np.array(["hi", "lo"])[(i // 3) % 2],
            "m": np.array(["u", "v", "w", "x"])[(i // 6) % 4],
            "b": (i % 4) < 2,
            "g": np.char.add("g", (i % 6).astype(str)),
        }
    )


@pytest.mark.parametrize("case", REFERENCE, ids=[c["formula"][0] for c in REFERENCE])
def test_columns_are_lme4s(case: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = build_model(case["formula"][0], table())
    assert list(model.fixed_names) == case["fixed"]
    assert [list(block.terms) for block in model.blocks] == case["random"]


def test_aliased_interaction_cell_is_dropped_with_lme4s_warning() -> None:
    with pytest.warns(g.RankDeficiencyWarning, match="'fc:klo'"):
        build_model("y ~ f:k + (1 | g)", table())


def test_interaction_order_follows_first_appearance() -> None:
    terms = [str(t) for t in r_ordered_formula("x1 + f/x1")]
    assert terms == ["1", "x1", "f", "x1:f"]
    assert [str(t) for t in r_ordered_formula("f + x1:f")] == ["1", "f", "f:x1"]
    # A formula already in R's order is formulaic's own object.
    assert [str(t) for t in r_ordered_formula("f*x1")] == ["1", "f", "x1", "f:x1"]


def test_same_space_as_formulaic_coding() -> None:
    """R's coding of an interaction without margins spans formulaic's columns' space: the
    fits agree, only the parametrization differs."""
    data = table()
    ours, names, _ = materialize("f:k", data, "test")
    assert names[:3] == ["(Intercept)", "fa:khi", "fb:khi"]
    cells = pd.get_dummies(data["f"] + data["k"]).to_numpy(dtype=float)
    for column in cells.T:
        coefficients = np.linalg.lstsq(ours, column, rcond=None)[0]
        np.testing.assert_allclose(ours @ coefficients, column, atol=1e-10)


def test_logical_expression_is_a_factor_and_predicts() -> None:
    data = table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = g.fit("y ~ 0 + I(x1 > 0) + (1 | g)", data)
    assert list(fit.params.index) == ["I(x1 > 0)FALSE", "I(x1 > 0)TRUE"]
    # One level only in new data: the fit's levels are kept.
    new = data[data["x1"] > 0].head(3)
    expected = 1 / (1 + np.exp(-fit.params["I(x1 > 0)TRUE"]))
    np.testing.assert_allclose(fit.predict(new, re="exclude"), expected, rtol=1e-12)


def test_logical_expression_of_a_missing_value_drops_the_row() -> None:
    data = table()
    data.loc[3, "x1"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info = build_model("y ~ I(x1 > 0) + (1 | g)", data)
    assert list(model.fixed_names) == ["(Intercept)", "I(x1 > 0)TRUE"]
    assert info.n_dropped == 1
    assert model.x.shape[0] == 47


def test_lme4_dummy_is_an_indicator_number() -> None:
    data = table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = build_model('y ~ dummy(k, "lo") + dummy(f) + (1 | g)', data)
    assert list(model.fixed_names) == [
        "(Intercept)",
        'dummy(k, "lo")',
        "dummy(f)b",
        "dummy(f)c",
    ]
    np.testing.assert_array_equal(model.x[:, 1], (data["k"] == "lo").to_numpy(dtype=float))
    with pytest.raises(ValueError, match=r"levels to keep \['z'\] are not levels"):
        build_model('y ~ dummy(k, "z") + (1 | g)', data)
