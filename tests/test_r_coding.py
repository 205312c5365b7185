"""R's model-matrix conventions (model.r_coding): column names and coding as lme4 gives them,
against lme4's glFormula (tests/reference/make_model_matrix_names.R)."""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import model_matrix_table
from formulaic import model_matrix
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.model.design import build_model
from glmm_binomial.model.r_coding import r_ordered_formula
from glmm_binomial.model.transforms import materialize

REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE = json.loads((REFERENCE_DIR / "model_matrix_names.json").read_text())


@pytest.mark.parametrize("case", REFERENCE, ids=[c["formula"][0] for c in REFERENCE])
def test_columns_are_lme4s(case: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = build_model(case["formula"][0], model_matrix_table())
    assert list(model.fixed_names) == case["fixed"]
    assert [list(block.terms) for block in model.blocks] == case["random"]


def test_aliased_interaction_cell_is_dropped_with_lme4s_warning() -> None:
    with pytest.warns(g.RankDeficiencyWarning, match="'fc:klo'"):
        build_model("y ~ f:k + (1 | g)", model_matrix_table())


def test_interaction_order_follows_first_appearance() -> None:
    terms = [str(t) for t in r_ordered_formula("x1 + f/x1")]
    assert terms == ["1", "x1", "f", "x1:f"]
    assert [str(t) for t in r_ordered_formula("f + x1:f")] == ["1", "f", "f:x1"]
    # A formula already in R's order is formulaic's own object.
    assert [str(t) for t in r_ordered_formula("f*x1")] == ["1", "f", "x1", "f:x1"]


def test_same_space_as_formulaic_coding() -> None:
    """R's coding of an interaction without margins spans formulaic's columns' space: the
    fits agree, only the parametrization differs."""
    data = model_matrix_table()
    ours, names, _ = materialize("f:k", data, "test")
    assert names[:3] == ["(Intercept)", "fa:khi", "fb:khi"]
    cells = pd.get_dummies(data["f"] + data["k"]).to_numpy(dtype=float)
    for column in cells.T:
        coefficients = np.linalg.lstsq(ours, column, rcond=None)[0]
        np.testing.assert_allclose(ours @ coefficients, column, atol=1e-10)


def test_logical_expression_is_a_factor_and_predicts() -> None:
    data = model_matrix_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = g.fit("y ~ 0 + I(x1 > 0) + (1 | g)", data)
    assert list(fit.params.index) == ["I(x1 > 0)FALSE", "I(x1 > 0)TRUE"]
    # One level only in new data: the fit's levels are kept.
    new = data[data["x1"] > 0].head(3)
    expected = 1 / (1 + np.exp(-fit.params["I(x1 > 0)TRUE"]))
    np.testing.assert_allclose(fit.predict(new, re="exclude"), expected, rtol=1e-12)


def test_logical_expression_of_a_missing_value_drops_the_row() -> None:
    data = model_matrix_table()
    data.loc[3, "x1"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info = build_model("y ~ I(x1 > 0) + (1 | g)", data)
    assert list(model.fixed_names) == ["(Intercept)", "I(x1 > 0)TRUE"]
    assert info.n_dropped == 1
    assert model.x.shape[0] == 47


TERMS = ["x1", "f", "k", "m", "x1:f", "f:k", "k:m", "f:k:m", "x1:k", "x1:f:k"]


def with_margins(terms: list[str]) -> list[str]:
    """terms and every term of fewer of each one's variables (a hierarchical formula)."""
    out: dict[str, None] = {}
    for term in terms:
        names = term.split(":")
        for size in range(1, len(names) + 1):
            for chosen in itertools.combinations(names, size):
                out[":".join(chosen)] = None
    return sorted(out, key=lambda t: t.count(":"))


@settings(max_examples=60, deadline=None)
@given(
    terms=st.lists(st.sampled_from(TERMS), min_size=1, max_size=3, unique=True),
    intercept=st.booleans(),
)
def test_hierarchical_formulas_span_formulaic_space(terms: list[str], intercept: bool) -> None:
    """With every interaction's margins in the formula, R's contrasts-or-indicators rule gives
    a full-rank design of formulaic's column space. (Without them R's heuristic can give
    another model, as in R: tests/reference's 0 + x1 + x1:f + f:k.)"""
    data = model_matrix_table()
    expr = ("" if intercept else "0 + ") + " + ".join(with_margins(terms))
    ours, _, _ = materialize(expr, data, "test")
    theirs = np.asarray(model_matrix(expr, data, output="numpy"), dtype=float)
    rank = np.linalg.matrix_rank
    assert rank(ours) == ours.shape[1] == rank(theirs) == rank(np.hstack([ours, theirs]))
