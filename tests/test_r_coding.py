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
from formulaic import model_matrix
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.model.design import build_model
from glmm_binomial.model.r_coding import r_ordered_formula
from glmm_binomial.model.transforms import materialize, rebuild

REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE = json.loads((REFERENCE_DIR / "model_matrix_names.json").read_text())
FUNCTIONS = json.loads((REFERENCE_DIR / "model_matrix_functions.json").read_text())


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
            "ii": i % 4,
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
    data = table()
    expr = ("" if intercept else "0 + ") + " + ".join(with_margins(terms))
    ours, _, _ = materialize(expr, data, "test")
    theirs = np.asarray(model_matrix(expr, data, output="numpy"), dtype=float)
    rank = np.linalg.matrix_rank
    assert rank(ours) == ours.shape[1] == rank(theirs) == rank(np.hstack([ours, theirs]))


def test_r_functions_in_a_formula_give_r_columns() -> None:
    """R's log(x, base), pmin, pmax, ifelse, relevel, interaction, as.numeric, as.factor,
    floor, ceiling, %% and %/%, as.logical, ns and cut: the names and values of R's model matrix
    (the columns lme4 keeps; interaction(f, k) makes relevel(f)'s aliased)."""
    formula = "y " + FUNCTIONS["rhs"][0] + " + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info = build_model(formula, table())
    assert set(info.dropped_columns) <= set(FUNCTIONS["columns"])
    kept = [FUNCTIONS["columns"].index(name) for name in model.fixed_names]
    assert [FUNCTIONS["columns"][j] for j in kept] == list(model.fixed_names)
    assert len(kept) + len(info.dropped_columns) == len(FUNCTIONS["columns"])
    reference = np.asarray(FUNCTIONS["rows"])[:, kept]
    np.testing.assert_allclose(model.x[:12], reference, rtol=1e-14, atol=1e-14)


def test_r_functions_refuse_what_r_refuses() -> None:
    data = table()
    with pytest.raises(ValueError, match="relevel\\(\\) needs a factor"):
        build_model("y ~ relevel(x1, 1) + (1 | g)", data)
    with pytest.raises(ValueError, match="ref 'z' is not a level"):
        build_model('y ~ relevel(f, "z") + (1 | g)', data)


def test_natural_spline_keeps_its_knots_for_new_data() -> None:
    """ns(x1, 3) on new values, two beyond the boundary knots (linear there): R's predict."""
    _, _, spec = materialize("0 + ns(x1, 3)", table(), "test")
    new = pd.DataFrame({"x1": FUNCTIONS["ns_new_x1"]})
    np.testing.assert_allclose(
        rebuild(spec, new, "test"), np.asarray(FUNCTIONS["ns_new"]), rtol=1e-12, atol=1e-14
    )


def test_r_functions_on_rows_left_after_missing_values() -> None:
    """Rows dropped for a missing value leave gaps in the index; each function's values stay
    with their rows."""
    data = table()
    data.loc[[2, 5], "x2"] = np.nan
    formula = "y " + FUNCTIONS["rhs"][0] + " + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info = build_model(formula, data)
        full, _ = build_model(formula, table())
    keep = np.setdiff1d(np.arange(len(data)), [2, 5])
    assert info.n_dropped == 2 and list(model.fixed_names) == list(full.fixed_names)
    stateless = [j for j, n in enumerate(model.fixed_names) if not n.startswith(("ns(", "cut("))]
    np.testing.assert_allclose(model.x[:, stateless], full.x[keep][:, stateless], rtol=1e-14)


@pytest.mark.parametrize(
    "response", ["as.numeric(x1 > 0)", "ifelse(x1 > 0, 1, 0)", "factor(x1 > 0)", "I(x1 > 0)"]
)
def test_r_functions_in_the_response(response: str) -> None:
    data = table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = build_model(f"{response} ~ x2 + (1 | g)", data)
    np.testing.assert_array_equal(model.successes, (data["x1"] > 0).to_numpy(dtype=float))
